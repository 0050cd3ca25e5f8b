"""The labelled fortnight: deterministic, every incident visible in the answers for its
labels while it runs (and only gradually, as the window fills with it), a weekly rhythm,
cross-region pairs with a high but steady round trip, and ground truth that does not
overlap."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import msgspec
import pytest

from simulator import Scenario, Simulator, SimulatorOptions
from simulator.fortnight import DAY, Fortnight, Incident, build
from simulator.network_health import insights
from simulator.options import OptionError

START = 1_793_577_600  # 2026-11-02T00:00:00Z, a Monday
WINDOW = 300


@pytest.fixture(scope="module")
def fortnight() -> Fortnight:
    return build(42, START)


@pytest.fixture(scope="module")
def sim(fortnight: Fortnight) -> Simulator:
    simulator = Simulator(fortnight.options, clock=lambda: float(fortnight.end + DAY))
    for scenario in fortnight.scenarios:
        simulator.set_scenario(scenario)
    return simulator


def _values(sim: Simulator, incident: Incident, to: int) -> dict[str, float] | None:
    """The metrics of the incident's group in the window ending at ``to`` (None: no row)."""
    dns = "network_dns_query" in incident.labels
    keys = "network.dns_query" if dns else "client_service,server_service"
    params = {"from": str(to - WINDOW), "to": str(to), "limit": "1000", "group_by": keys}
    rows: list[dict[str, Any]] = msgspec.json.decode(
        sim.answer("dns" if dns else "connections", params)
    )["data"]
    for row in rows:
        attributes = row["attributes"]
        if dns:
            labels = {"network_dns_query": attributes["group_bys"][0]["value"]}
            values = {m["key"]: float(m["value"]) for m in attributes["metrics"]}
        else:
            labels = {k: v[0] for k, v in attributes["group_bys"].items()}
            values = {k: float(v) for k, v in attributes.items() if k != "group_bys"}
        if labels == incident.labels:
            return values
    return None


def _signal(kind: str, values: dict[str, float] | None) -> float:
    """The number each incident kind raises (for `dark`: the packets it removes)."""
    if values is None:
        return 0.0
    if kind == "retransmit_storm":
        return values["tcp_retransmits"] / values["packets_sent_by_client"]
    if kind == "rtt_spike":
        return values["rtt_micro_seconds"]
    if kind == "dark":
        return values["packets_sent_by_client"]
    if kind.startswith("dns_"):
        key = {
            "dns_servfail_spike": "dns_responses.servfail",
            "dns_nxdomain_spike": "dns_responses.nxdomain",
            "dns_timeout_spike": "dns_timeouts",
        }[kind]
        return values[key] / values["dns_total_requests"]
    name = {"resets_spike": "tcp_resets", "refusals_spike": "tcp_refusals"}.get(
        kind, "tcp_timeouts"
    )
    return values[name]


def test_the_same_seed_and_start_give_the_same_fortnight_and_another_seed_another() -> None:
    assert build(42, START) == build(42, START + 3600)  # rounded down to midnight
    assert build(7, START).incidents != build(42, START).incidents


def test_every_pair_incident_shows_in_its_groups_answer_while_it_runs(
    fortnight: Fortnight, sim: Simulator
) -> None:
    pair_incidents = [
        i
        for i in fortnight.incidents
        if i.side == "data"
        and i.scenario
        and i.scenario.match
        and i.scenario.endpoint != "network_health"  # below
    ]
    kinds = {i.scenario.kind for i in pair_incidents if i.scenario}
    assert kinds == {
        "retransmit_storm", "rtt_spike", "resets_spike", "refusals_spike", "timeouts_spike",
        "dark", "dns_servfail_spike", "dns_timeout_spike", "dns_nxdomain_spike",
    }  # fmt: skip
    for incident in pair_incidents:
        assert incident.scenario is not None
        kind = incident.scenario.kind
        before = _signal(kind, _values(sim, incident, incident.start - 3600))
        during = _signal(kind, _values(sim, incident, incident.start + 10 * 60))
        if kind == "dark":
            assert before > 1 and during == 0, incident.name
        else:
            assert during >= 2.5 * before and during > 0, (incident.name, before, during)


def test_an_incident_shows_gradually_as_the_window_fills_with_it(
    fortnight: Fortnight, sim: Simulator
) -> None:
    [storm] = [i for i in fortnight.incidents if i.name == "retransmit storm"]
    ratios = [
        _signal("retransmit_storm", _values(sim, storm, storm.start + offset))
        for offset in (0, 60, 150, 240, WINDOW)
    ]
    assert ratios == sorted(ratios) and ratios[0] < 0.01 and ratios[-1] > 0.2
    assert 0.3 * ratios[-1] < ratios[2] < 0.7 * ratios[-1]  # half the window: about half


def test_a_query_that_answers_nothing_for_hours(fortnight: Fortnight, sim: Simulator) -> None:
    [empty] = [i for i in fortnight.incidents if i.name == "connections query answers nothing"]
    assert empty.end - empty.start >= 3 * 3600
    params = {"from": str(empty.start + 3600 - WINDOW), "to": str(empty.start + 3600)}
    assert msgspec.json.decode(sim.answer("connections", params))["data"] == []
    params = {"from": str(empty.end + 3600 - WINDOW), "to": str(empty.end + 3600)}
    assert msgspec.json.decode(sim.answer("connections", params))["data"] != []


def test_cross_region_pairs_have_a_high_but_steady_round_trip(fortnight: Fortnight) -> None:
    sim = Simulator(fortnight.options)
    for scenario in fortnight.landscape:
        sim.set_scenario(scenario)
    for scenario in fortnight.landscape:
        probe = Incident("probe", "data", 0, 0, dict(scenario.match), ())
        rtts = [
            _signal("rtt_spike", _values(sim, probe, fortnight.start + h * 3600 + 1234))
            for h in range(0, 48, 5)
        ]
        assert min(rtts) > 100_000 and max(rtts) < 320_000
        assert max(rtts) < 1.7 * min(rtts)


def test_the_weekend_is_quieter_than_midweek(fortnight: Fortnight) -> None:
    sim = Simulator(fortnight.options)
    steady = Simulator(dataclasses.replace(fortnight.options, weekly_swing=0.0))
    assert fortnight.options.weekly_swing > 0

    def volume(simulator: Simulator, to: int) -> float:
        body = simulator.answer("connections", {"from": str(to - WINDOW), "to": str(to)})
        row = msgspec.json.decode(body)["data"][0]["attributes"]
        return float(row["bytes_sent_by_client"])

    sunday = fortnight.start + 6 * DAY + 3 * 3600  # the fortnight starts on a Monday
    wednesday = sunday - 3 * DAY - 12 * 3600
    # Against the same universe without the weekly wave, at the same instants.
    midweek = volume(sim, wednesday) / volume(steady, wednesday)
    weekend = volume(sim, sunday) / volume(steady, sunday)
    assert midweek == pytest.approx(1.25, abs=0.02) and weekend == pytest.approx(0.75, abs=0.02)


def test_labelled_incidents_do_not_overlap_and_each_names_its_alerts(
    fortnight: Fortnight,
) -> None:
    labelled = [i for i in fortnight.incidents if i.side != "noise"]
    for first, second in itertools.pairwise(labelled):
        assert first.end + 1800 <= second.start, (first.name, second.name)
    assert all(i.alerts for i in labelled)
    assert all(fortnight.start + DAY <= i.start and i.end <= fortnight.end for i in labelled)
    noise = [i for i in fortnight.incidents if i.side == "noise"]
    assert len(noise) >= 3 * 13 and not any(i.alerts for i in noise)


def test_cases_open_and_close_and_the_cases_incidents_add_theirs(fortnight: Fortnight) -> None:
    p3 = {fortnight.open_cases(t)["P3"] for t in range(fortnight.start, fortnight.end, 3600)}
    assert len(p3) > 5
    for incident in (i for i in fortnight.incidents if i.side == "cases"):
        priority = incident.labels["priority"]
        before = fortnight.open_cases(incident.start - 1)[priority]
        during = fortnight.open_cases(incident.start + 60)[priority]
        assert during == before + int(incident.detail["extra"])


def test_blend_is_a_scenario_option_and_weekly_swing_is_bounded() -> None:
    scenario = Scenario(kind="dark", start=100, end=400, blend=True)
    assert scenario.share_of(0, 300) == pytest.approx(200 / 300)
    assert scenario.share_of(500, 800) == 0.0
    # Without blend, all or nothing by the window's end, as before.
    assert Scenario(kind="dark", start=100, end=400).share_of(0, 300) == 1.0
    assert Scenario(kind="dark", start=100, end=400).share_of(0, 50) == 0.0
    with pytest.raises(OptionError):
        SimulatorOptions(weekly_swing=1.0)


def _insight(fortnight: Fortnight, incident: Incident, to: int) -> dict[str, Any]:
    """The attributes of the incident's insight in the window ending at ``to``."""
    rows = insights(to - WINDOW, to, fortnight.scenarios)
    if "domain" in incident.labels:
        [row] = [r for r in rows if r.get("domain_name") == incident.labels["domain"]]
    else:
        names = {"category": "type", "client_service": "client_service"}
        names["server_service"] = "server_service"
        [row] = [r for r in rows if all(r.get(names[k]) == v for k, v in incident.labels.items())]
    return row


def test_network_health_incidents_show_in_the_insights_while_they_run(
    fortnight: Fortnight,
) -> None:
    """A certificate crossing 14 days to expiry and one expiring, a DNS and a TCP failure
    burst and a security-group denial, each meant for its alert."""
    shaped = [
        i for i in fortnight.incidents if i.scenario and i.scenario.endpoint == "network_health"
    ]
    labelled = {i.alerts[0]: i for i in shaped if i.side == "data"}
    assert sorted(labelled) == [
        "DatadogNetworkHealthCertificateExpired",
        "DatadogNetworkHealthCertificateExpiringSoon",
        "DatadogNetworkHealthDNSFailures",
        "DatadogNetworkHealthSecurityGroupDenials",
        "DatadogNetworkHealthTCPFailures",
    ]
    for alert, incident in labelled.items():
        before = _insight(fortnight, incident, incident.start - 60)
        during = _insight(fortnight, incident, incident.start + 10 * 60)
        after = _insight(fortnight, incident, incident.end + 10 * 60)
        if "Certificate" in alert:
            days = [row["days_until_expiration"] for row in (before, during, after)]
            if alert.endswith("Expired"):
                assert days[0] > 14 and days[1] <= 0 < days[2], days
            else:  # 14 days left the day before: it crosses the threshold at the start
                assert days == [14, 13, days[2]] and days[2] >= 30, days
        else:
            rates = [row["failure_rate"] for row in (before, during, after)]
            assert rates[1] >= 10 * max(rates[0], rates[2]), (incident.name, rates)
            assert during["total_requests"] >= WINDOW, incident.name  # a request a second


def test_network_health_noise_is_short_or_quiet(fortnight: Fortnight) -> None:
    """Noise no alert may page for: blips on busy pairs shorter than the alerts' 10
    minutes, and failure bursts on pairs under a request a second; each kind twice."""
    noise = [
        i
        for i in fortnight.incidents
        if i.side == "noise" and i.scenario and i.scenario.endpoint == "network_health"
    ]
    assert len(noise) == 10 and len({i.name for i in noise}) == 5
    for incident in noise:
        during = _insight(fortnight, incident, incident.end)
        if incident.end - incident.start < 10 * 60:
            assert during["total_requests"] >= WINDOW, incident.name
        else:
            assert during["total_requests"] < WINDOW, incident.name
        before = _insight(fortnight, incident, incident.start - 60)
        assert during["failure_rate"] >= 10 * before["failure_rate"], incident.name
