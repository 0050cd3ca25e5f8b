"""The Grafana dashboard: valid JSON, well-formed panels, PromQL that parses, only
metric names the exporter exports (or Prometheus' own `up`, or the shipped recording
rules' series), and the baselines the alerts compare with beside the values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.deploy_support import (
    DASHBOARD,
    alert_rules,
    describe,
    metric_names,
    recorded_names,
    run,
    tool,
)
from tests.deploy.exported_metrics import EXPORTED_METRIC_NAMES, PROMETHEUS_SCRAPE_METRICS

# Values substituted for Grafana's template variables to get plain PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": "datadog-cnm-exporter",
    "$query": "svc_to_svc",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    result = []
    for panel in dash["panels"]:
        result.append(panel)
        result.extend(panel.get("panels", []))
    return result


def panel_queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in panels(dash)
        for target in panel.get("targets", [])
    ]


def variable_queries(dash: dict[str, Any]) -> list[str]:
    """The metric selectors of label_values(...) template variables."""
    selectors = []
    for variable in dash["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        m = re.fullmatch(r"label_values\((.*),\s*\w+\)", text)
        assert m, text
        selectors.append(m.group(1))
    return selectors


def plain_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr.replace('"$1"', ""), f"unknown Grafana variable in {expr}"
    return expr


def test_dashboard_is_importable_json() -> None:
    dash = dashboard()
    assert dash["title"] and dash["uid"] == "datadog-cnm-exporter"
    ids = [panel["id"] for panel in panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dash):
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_covers_network_cases_audience_and_health() -> None:
    used = set().union(*(metric_names(expr) for _, expr in panel_queries(dashboard())))
    for required in (
        "datadog_cnm_tcp_rtt_seconds",
        "datadog_cnm_tcp_retransmits",
        "datadog_cnm_tcp_resets",
        "datadog_cases",
        "datadog_audience_connection_info",
        "datadog_network_health_failure_ratio",
        "datadog_network_health_certificate_expiry_seconds",
        "datadog_exporter_up",
    ):
        assert required in used, required


def test_every_metric_in_the_dashboard_is_exported_or_recorded() -> None:
    dash = dashboard()
    known = EXPORTED_METRIC_NAMES | PROMETHEUS_SCRAPE_METRICS | recorded_names()
    exprs = [expr for _, expr in panel_queries(dash)] + variable_queries(dash)
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(plain_promql(expr))
        assert names, f"no metric found in {expr!r}"
        used |= names
    assert used - known == set(), f"not exported: {sorted(used - known)}"


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses each query (wrapped as a recording rule)."""
    dash = dashboard()
    exprs = [expr for _, expr in panel_queries(dash)] + variable_queries(dash)
    rules = [
        {"record": f"dashboard:query_{i}", "expr": plain_promql(e)} for i, e in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = run([tool("promtool"), "check", "rules", str(path)])
    assert proc.returncode == 0, describe(proc)


def test_baseline_alerts_show_their_baseline_beside_the_value() -> None:
    """Each alert comparing a group with its own baseline has a panel drawing both the
    series it reads and that baseline (the same recorded series, the same window)."""
    panel_exprs: dict[str, list[str]] = {}
    for title, expr in panel_queries(dashboard()):
        panel_exprs.setdefault(title, []).append(re.sub(r"\{[^}]*\}", "", expr))
    baselines = {
        "DatadogCNMHighRTT": "query:datadog_cnm_tcp_rtt_seconds:median_1d[20m]",
        "DatadogCNMResetsSpiking": "query:datadog_cnm_tcp_resets:per_second[1h] offset 15m",
        "DatadogCNMRefusalsSpiking": "query:datadog_cnm_tcp_refusals:per_second[1h] offset 15m",
        "DatadogCNMTimeoutsSpiking": "query:datadog_cnm_tcp_timeouts:per_second[1h] offset 15m",
        "DatadogDNSServfailSpiking":
            "query:datadog_dns_servfail_responses_per_request:ratio[1h] offset 15m",
        "DatadogDNSNxdomainSpiking":
            "query:datadog_dns_nxdomain_responses_per_request:ratio[1h] offset 15m",
        "DatadogDNSTimeoutsSpiking": "query:datadog_dns_timeouts_per_request:ratio[1h] offset 15m",
    }  # fmt: skip
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    for alert, baseline in baselines.items():
        assert baseline in rules[alert], f"{alert} no longer reads {baseline}"
        shown = [
            title
            for title, exprs in panel_exprs.items()
            if len(exprs) >= 2 and any(baseline in e for e in exprs)
        ]
        assert shown, f"no panel shows the baseline of {alert} beside its value"


def test_the_dns_row_shows_what_the_dns_alerts_read() -> None:
    dash = dashboard()
    rows = [p for p in dash["panels"] if p["type"] == "row"]
    dns_row = next(r for r in rows if r["title"] == "DNS")
    next_row = min(r["gridPos"]["y"] for r in rows if r["gridPos"]["y"] > dns_row["gridPos"]["y"])
    in_row = set().union(
        *(
            metric_names(t["expr"])
            for p in dash["panels"]
            if dns_row["gridPos"]["y"] < p["gridPos"]["y"] < next_row
            for t in p.get("targets", [])
        )
    )
    for rule in alert_rules():
        if rule["alert"].startswith("DatadogDNS"):
            ratios = {m for m in metric_names(rule["expr"]) if m.endswith(":ratio")}
            assert ratios and ratios <= in_row, rule["alert"]
