"""The harness's own logic, without Prometheus: `for` applied as Prometheus applies it, and
firings scored against the ground truth (caught, delay, false, during Datadog faults)."""

from __future__ import annotations

from pathlib import Path

import yaml

from simulator.fortnight import DAY, Incident, build
from tests.alerting.harness import (
    CONFIG,
    HISTORY_QUERIES,
    ROW_FAMILIES,
    RULES_DIR,
    SEED,
    START,
    Episode,
    Rule,
    apply_for,
    exporter_view,
    harness_config,
    needed_recording_rules,
    remove_fault_spans,
    rule_families,
    score,
)

RULE = Rule("DatadogCNMHighRTT", "network", "up", hold=180, interval=60)
PAIR = frozenset({("client_service", "a"), ("server_service", "b")})


def test_for_fires_at_the_first_step_held_that_long_and_a_gap_resets_it() -> None:
    # present at 0..240 (fires at 180), gone at 300, back 360..480: pending again,
    # 360 + 180 = 540 is past the end, so no second firing.
    present = {PAIR: {0, 60, 120, 180, 240, 360, 420, 480}}
    [episode] = apply_for(RULE, present, 0, 540)
    assert (episode.active, episode.fired, episode.end) == (0, 180, 300)
    assert apply_for(RULE, {PAIR: {0, 60, 120}}, 0, 600) == []


def test_for_zero_fires_at_the_first_step() -> None:
    rule = Rule("X", "network", "up", hold=0, interval=60)
    [episode] = apply_for(rule, {PAIR: {120}}, 0, 600)
    assert (episode.active, episode.fired, episode.end) == (120, 120, 180)


def test_scoring_catches_by_labels_and_time_and_counts_the_rest_as_false() -> None:
    fortnight = build(SEED, START)
    rule = Rule("DatadogCNMHighRetransmitRatio", "network", "up", hold=180, interval=60)
    [storm] = [i for i in fortnight.incidents if i.name == "retransmit storm"]
    [fault] = [i for i in fortnight.incidents if i.name == "Datadog answers 5xx"]
    labels = {**storm.labels, "job": "j", "query": "svc_to_svc"}
    episodes = [
        Episode(rule.name, labels, storm.start + 60, storm.start + 240, storm.end + 300),
        # the right pair a day later: false
        Episode(rule.name, labels, storm.start + DAY, storm.start + DAY + 180, storm.end + DAY),
        # another pair during the storm: false; during the 5xx fault: false, and counted there
        Episode(rule.name, {"client_service": "x"}, storm.start, storm.start + 180, storm.end),
        Episode(rule.name, {"client_service": "y"}, fault.start, fault.start + 180, fault.end),
    ]
    report = score(fortnight, [rule], episodes, 1.0)
    result = report.scores[rule.name]
    assert result.delays == [240] and result.missed == []
    assert len(result.false) == 3 and len(result.during_datadog_faults) == 1
    # An expected alert without a rule is listed, with everything missed.
    assert report.scores["DatadogCNMHighRTT"].rule is None
    assert len(report.scores["DatadogCNMHighRTT"].missed) == 2
    assert "| DatadogCNMHighRetransmitRatio | network | 1 / 1 | 1.5 | 4.0 min / 4.0 min |" in (
        report.table()
    )


def test_incidents_meant_for_no_alert_are_noise() -> None:
    noise: list[Incident] = [i for i in build(SEED, START).incidents if i.side == "noise"]
    assert noise and all(i.alerts == () for i in noise)


def test_only_the_recording_rules_and_families_the_alerts_read_are_built(tmp_path: Path) -> None:
    (tmp_path / "alerting.yml").write_text(
        "groups:\n- name: x.network\n  rules:\n"
        "  - alert: A\n"
        "    expr: 'query:resets:per_second > 1 and datadog_cnm_tcp_rtt_seconds > 1'\n"
    )
    (tmp_path / "recording.yml").write_text(
        "groups:\n- name: x.recording\n  rules:\n"
        "  - record: query:resets:per_second\n"
        "    expr: datadog_cnm_tcp_resets / datadog_exporter_window_seconds\n"
        "  - record: query:bytes:per_second\n"
        "    expr: datadog_cnm_server_sent_bytes / datadog_exporter_window_seconds\n"
        "- name: x.baselines\n  interval: 10m\n  rules:\n"
        "  - record: query:bytes:median_1d\n"
        "    expr: quantile_over_time(0.5, datadog_cnm_server_sent_bytes[1d])\n"
    )
    [group] = needed_recording_rules(tmp_path)
    assert group["name"] == "x.recording"
    assert [r["record"] for r in group["rules"]] == ["query:resets:per_second"]
    assert rule_families(tmp_path) == sorted(
        {
            "datadog_cnm_tcp_resets",
            "datadog_cnm_tcp_rtt_seconds",
            "datadog_exporter_window_seconds",
            *(name for names in ROW_FAMILIES.values() for name in names),
        }
    )
    # The shipped rules: every family a kept rule reads is written.
    shipped = rule_families(RULES_DIR)
    assert "datadog_exporter_window_seconds" in shipped
    assert "datadog_cnm_server_sent_bytes" not in shipped


def test_the_harness_backfills_a_network_health_query_beside_the_shipped_ones(
    tmp_path: Path,
) -> None:
    """The shipped configuration has no network_health query (opt-in): the harness's own
    has the shipped queries and one more, shaped as the shipped CNM queries."""
    config = yaml.safe_load(harness_config(tmp_path).read_text())
    shipped = yaml.safe_load(CONFIG.read_text())
    assert "network_health" not in shipped
    assert {k: v for k, v in config.items() if k != "network_health"} == shipped
    [query] = config["network_health"]
    assert (query["interval"], query["window"], query["delay"]) == (
        shipped["connections"][0]["interval"],
        shipped["connections"][0]["window"],
        shipped["connections"][0]["delay"],
    )
    assert ("network_health", query["name"]) in HISTORY_QUERIES
    assert {"datadog_network_health_failure_ratio", "datadog_network_health_requests"} <= set(
        rule_families(RULES_DIR)
    )


def test_network_health_polls_fail_during_the_datadog_faults_too(tmp_path: Path) -> None:
    fortnight = build(SEED, START)
    [fault] = [i for i in fortnight.incidents if i.name == "Datadog answers 5xx"]
    path = tmp_path / "network_health-insights-2026-11-02.om"
    t = fault.start + 60
    path.write_text(
        f'datadog_network_health_requests{{category="dns"}} 5 {t - 120}\n'
        f'datadog_network_health_certificate_expiry_seconds{{domain="a"}} 5 {t - 120}\n'
        f'datadog_network_health_failure_ratio{{category="dns"}} 0.1 {t - 120}\n'
        f'datadog_network_health_requests{{category="dns"}} 5 {t}\n'
    )
    assert remove_fault_spans(path, [(fault.start, fault.end)]) == {t - 120: 2}
    view = exporter_view(fortnight, {query: {} for query in HISTORY_QUERIES})
    up = 'datadog_exporter_up{job="datadog-cnm-exporter",instance="10.0.3.17:10173",'
    up += 'collector="network_health",query="insights"}'
    assert f"{up} 0 {t - t % 60}\n" in view
    assert f"{up} 1 {fault.start - 3600 - fault.start % 60}\n" in view
    assert 'endpoint="network_health",code="500"' in view
