"""The harness's own logic, without Prometheus: `for` applied as Prometheus applies it, and
firings scored against the ground truth (caught, delay, false, during Datadog faults)."""

from __future__ import annotations

from exporter.simulator.fortnight import DAY, Incident, build
from tests.alerting.harness import SEED, START, Episode, Rule, apply_for, score

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
