"""The example Alertmanager configuration: amtool-clean, routes every shipped
alert by team and severity, and inhibits symptoms while the exporter is down.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.deploy_support import (
    ALERTMANAGER_CONFIG,
    alert_rules,
    describe,
    load_yaml,
    run,
    tool,
)


def routed_receiver(**labels: str) -> str:
    argv = [tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}"]
    proc = run([*argv, *(f"{k}={v}" for k, v in labels.items())])
    assert proc.returncode == 0, describe(proc)
    return proc.stdout.strip()


def test_amtool_check_config() -> None:
    proc = run([tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG)])
    assert proc.returncode == 0, describe(proc)
    assert "SUCCESS" in proc.stdout, describe(proc)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {"alertname": "DatadogExporterDown", "team": "observability", "severity": "critical"},
            "observability-pager",
        ),
        (
            {
                "alertname": "DatadogExporterPollsFailing",
                "team": "observability",
                "severity": "warning",
            },
            "observability-chat",
        ),
        (
            {
                "alertname": "DatadogCNMHighRetransmitRatio",
                "team": "network",
                "severity": "warning",
            },
            "network-chat",
        ),
        ({"alertname": "Anything", "team": "network", "severity": "critical"}, "network-pager"),
        (
            {
                "alertname": "DatadogOpenCasesAboveThreshold",
                "team": "operations",
                "severity": "warning",
            },
            "operations-chat",
        ),
        (
            {
                "alertname": "DatadogAudienceConnectionNotUpdated",
                "team": "frontend",
                "severity": "info",
            },
            "low-priority-chat",
        ),
        ({"alertname": "Other", "team": "someone-else", "severity": "critical"}, "default-pager"),
        ({"alertname": "Other", "severity": "warning"}, "default-chat"),
    ],
)
def test_routes_by_team_then_severity(labels: dict[str, str], receiver: str) -> None:
    assert routed_receiver(**labels) == receiver


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_shipped_alert_reaches_its_team(rule: dict[str, Any]) -> None:
    receiver = routed_receiver(alertname=rule["alert"], **rule["labels"])
    assert receiver.startswith(rule["labels"]["team"]) or receiver == "low-priority-chat", receiver


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Enough of Alertmanager's matcher syntax for the shipped config: = != =~."""
    for matcher in matchers:
        m = re.fullmatch(r'(\w+)(=~|!=|=)"(.*)"', matcher)
        assert m, matcher
        name, op, value = m.groups()
        actual = labels.get(name, "")
        if op == "=" and actual != value:
            return False
        if op == "!=" and actual == value:
            return False
        if op == "=~" and not re.fullmatch(value, actual):
            return False
    return True


def test_exporter_down_inhibits_every_other_shipped_alert_of_its_job() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    down = {"alertname": "DatadogExporterDown", "severity": "critical", "team": "observability"}
    rules = [
        r
        for r in config["inhibit_rules"]
        if _matches(r["source_matchers"], down) and r["equal"] == ["job"]
    ]
    assert rules, "no inhibit rule sourced by DatadogExporterDown on job"
    for alert in alert_rules():
        labels = {"alertname": alert["alert"], **alert["labels"]}
        inhibited = any(_matches(r["target_matchers"], labels) for r in rules)
        assert inhibited == (alert["alert"] != "DatadogExporterDown"), alert["alert"]


def test_failing_or_stale_query_inhibits_alerts_about_its_data() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    source = {
        "alertname": "DatadogExporterPollsFailing",
        "severity": "warning",
        "team": "observability",
    }
    rules = [r for r in config["inhibit_rules"] if _matches(r["source_matchers"], source)]
    assert any("query" in r["equal"] for r in rules)
    for alert in alert_rules():
        labels = {"alertname": alert["alert"], **alert["labels"]}
        is_data_alert = alert["labels"]["team"] != "observability"
        inhibited = any(
            _matches(r["target_matchers"], labels) for r in rules if "query" in r["equal"]
        )
        assert inhibited == is_data_alert, alert["alert"]
