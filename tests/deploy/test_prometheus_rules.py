"""The shipped Prometheus rules and example configs: promtool-clean, every
alert unit-tested both ways, well-labelled and documented, only using metrics
the exporter exports, and identical to the PrometheusRule resource.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import (
    DEPLOY,
    KUSTOMIZE,
    PROMTOOL_TESTS,
    RULE_FILES,
    RUNBOOK,
    alert_rules,
    describe,
    load_yaml,
    metric_names,
    recorded_names,
    run,
    tool,
)
from tests.deploy.exported_metrics import EXPORTED_METRIC_NAMES, PROMETHEUS_SCRAPE_METRICS

SEVERITIES = {"critical", "warning", "info"}
TEAMS = {"observability", "network", "operations", "frontend"}
RUNBOOK_BASE = (
    "https://github.com/datadog-cnm-exporter/datadog-cnm-exporter/blob/main/deploy/runbook.md"
)
EXAMPLE_CONFIGS = ("prometheus.yml", "prometheus-kubernetes-sd.yml")


def test_promtool_check_rules() -> None:
    proc = run([tool("promtool"), "check", "rules", *map(str, RULE_FILES)])
    assert proc.returncode == 0, describe(proc)


def test_promtool_unit_tests_pass() -> None:
    assert PROMTOOL_TESTS, "no promtool unit tests found"
    proc = run([tool("promtool"), "test", "rules", *map(str, PROMTOOL_TESTS)])
    assert proc.returncode == 0, describe(proc)
    assert "FAILED" not in proc.stdout + proc.stderr, describe(proc)


def _alert_cases() -> dict[str, dict[str, int]]:
    """alertname -> {"fires": n, "silent": n} over all promtool test cases."""
    cases: dict[str, dict[str, int]] = {}
    for path in PROMTOOL_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "fires" if case.get("exp_alerts") else "silent"
                counts = cases.setdefault(case["alertname"], {"fires": 0, "silent": 0})
                counts[kind] += 1
    return cases


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_a_firing_and_a_silent_unit_test(rule: dict[str, Any]) -> None:
    counts = _alert_cases().get(rule["alert"], {"fires": 0, "silent": 0})
    assert counts["fires"] >= 1, f"no promtool case where {rule['alert']} fires"
    assert counts["silent"] >= 1, f"no promtool case where {rule['alert']} must not fire"


def test_firing_cases_pin_every_label_and_annotation() -> None:
    by_name = {rule["alert"]: rule for rule in alert_rules()}
    for path in PROMTOOL_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                rule = by_name[case["alertname"]]
                for alert in case.get("exp_alerts") or []:
                    assert rule["labels"].items() <= alert["exp_labels"].items(), test["name"]
                    assert set(alert["exp_annotations"]) == set(rule["annotations"]), test["name"]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_severity_team_and_documentation(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["team"] in TEAMS
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{rule['alert'].lower()}"
    assert re.match(r"^[A-Z][A-Za-z]+$", rule["alert"]), "CamelCase alert names"
    assert rule.get("for"), "every alert waits before firing"


def test_runbook_has_a_section_for_every_alert_and_no_other() -> None:
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(), re.MULTILINE)
    assert sorted(headings) == sorted(rule["alert"] for rule in alert_rules())


def test_rules_only_use_exported_or_recorded_metrics() -> None:
    known = EXPORTED_METRIC_NAMES | PROMETHEUS_SCRAPE_METRICS | recorded_names()
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                unknown = metric_names(rule["expr"]) - known
                assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


def test_recording_rule_names_follow_level_metric_operation() -> None:
    for name in recorded_names():
        level, metric, operation = name.split(":")
        assert level and operation, name
        assert metric in EXPORTED_METRIC_NAMES or metric.startswith(
            ("datadog_cnm_", "datadog_dns_")
        ), name


def test_prometheusrule_equals_the_rule_files() -> None:
    """The PrometheusRule is generated from the plain files; the two must not drift."""
    resource = load_yaml(KUSTOMIZE / "standalone" / "prometheusrule.yaml")
    plain = [group for path in RULE_FILES for group in load_yaml(path)["groups"]]
    assert resource["spec"]["groups"] == plain
    proc = run([sys.executable, str(DEPLOY / "prometheus" / "render_prometheusrule.py"), "--check"])
    assert proc.returncode == 0, describe(proc)


@pytest.mark.parametrize("name", EXAMPLE_CONFIGS)
def test_example_prometheus_config_passes_promtool(name: str, tmp_path: Path) -> None:
    """promtool check config, which also checks the rule files they load.

    Debian's Prometheus is built without Kubernetes service discovery, so
    where promtool does not know kubernetes_sd_configs the rest of that file
    (relabelling, rule files) is checked with the SD swapped for static targets.
    """
    path = DEPLOY / "prometheus" / name
    promtool = tool("promtool")
    proc = run([promtool, "check", "config", str(path)])
    if (
        proc.returncode != 0
        and "field kubernetes_sd_configs not found" in proc.stdout + proc.stderr
    ):
        config = load_yaml(path)
        for job in config["scrape_configs"]:
            if job.pop("kubernetes_sd_configs", None) is not None:
                job["static_configs"] = [{"targets": ["pod.example:10173"]}]
        config["rule_files"] = [str(path.parent / f) for f in config["rule_files"]]
        copy = tmp_path / name
        copy.write_text(yaml.safe_dump(config))
        proc = run([promtool, "check", "config", str(copy)])
    assert proc.returncode == 0, describe(proc)
    jobs = [job["job_name"] for job in load_yaml(path)["scrape_configs"]]
    assert "datadog-cnm-exporter" in jobs, "the job name the shipped alerts select"
