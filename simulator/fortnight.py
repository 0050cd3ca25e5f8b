"""A labelled fortnight of history: the landscape, its incidents and their ground truth (pure).

Deterministic for a seed and a start (Unix seconds, midnight UTC). The simulator serves it
(`python -m simulator --fortnight START`) and the alert-quality harness
(tests/alerting/) backfills it, evaluates the shipped alerts over it and scores them
against the ground truth here.

What it holds:

- the network: the connections universe of `UNIVERSE` flows (dozens of service pairs, some
  sending less than a packet a second) with the daily rhythm of the data module and a
  weekly one (`WEEKLY_SWING`), a few cross-region pairs whose normal round-trip time is
  high but steady (unbounded `rtt_spike` scenarios), and short seeded blips on low-traffic
  pairs (retransmits, resets, refusals, timeouts) that no alert should page for;
- DNS: the universe's queries with their background of NXDOMAIN answers (one name never
  resolves) and timeouts;
- cases: open cases per priority, opening and closing through the fortnight
  (`open_cases`);
- incidents, each with its start, end, the labels it affects and the alerts meant to
  catch it. Data incidents are blending scenarios (they show as the window fills with
  them); exporter-side ones (Datadog answering 5xx or 429, rows dropped by `max_series`)
  are described here and turned into the exporter's self-metrics by the harness, which
  owns the exporter's metric names.

It must not import the exporter: it names alerts and labels as plain strings.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from simulator.data import NetworkData
from simulator.options import Scenario, ScenarioKind, SimulatorOptions

DAY = 86400
DAYS = 14
UNIVERSE = 80
WEEKLY_SWING = 0.25
CONNECTIONS_KEYS = ("client_service", "server_service")
DNS_KEYS = ("network.dns_query",)
PRIORITIES = ("P1", "P2", "P3")

IncidentSide = Literal["data", "datadog", "exporter", "cases", "noise"]


@dataclass(frozen=True)
class Incident:
    """One thing that happened, and what should have said so.

    `labels` are the labels (as the exporter names them: dots become underscores) an
    alert about it carries; `alerts` the alerts meant to catch it (empty for noise,
    which no alert should page for); `allowed` alerts that may also fire meanwhile
    without counting as false (the exporter's own, during a Datadog-side fault).
    `side` says where it happens: in the data, on Datadog's side (5xx, 429), in the
    exporter (rows dropped), in cases, or a noise blip on a low-traffic pair.
    """

    name: str
    side: IncidentSide
    start: int
    end: int
    labels: dict[str, str]
    alerts: tuple[str, ...]
    scenario: Scenario | None = None
    allowed: tuple[str, ...] = ()
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fortnight:
    """The whole fortnight: simulator options, its scenarios and every incident."""

    seed: int
    start: int
    options: SimulatorOptions
    landscape: tuple[Scenario, ...]
    incidents: tuple[Incident, ...]

    @property
    def end(self) -> int:
        return self.start + DAYS * DAY

    @property
    def scenarios(self) -> tuple[Scenario, ...]:
        """Everything the simulator must apply: the landscape and the data incidents."""
        shaped = tuple(i.scenario for i in self.incidents if i.scenario is not None)
        return (*self.landscape, *shaped)

    def open_cases(self, t: int) -> dict[str, int]:
        """Open cases per priority at ``t``: a seeded walk of cases opening and closing
        (P1 none, P2 up to 4, P3 between 4 and 18), plus the cases incidents."""
        hour = (t - self.start) // 3600
        rng = random.Random(f"{self.seed}-cases-{hour // 6}")
        counts = {"P1": 0, "P2": rng.randint(0, 4), "P3": rng.randint(4, 18)}
        wobble = random.Random(f"{self.seed}-cases-{hour}").randint(-1, 1)
        counts["P3"] = max(0, counts["P3"] + wobble)
        for incident in self.incidents:
            if incident.side == "cases" and incident.start <= t < incident.end:
                priority = incident.labels["priority"]
                counts[priority] += int(incident.detail["extra"])
        return counts


def _pairs(network: NetworkData) -> list[tuple[tuple[str, str], float, float]]:
    """(client, server), packets per second, RTT in microseconds; single-valued TCP pairs."""
    groups = network._groups("connections", CONNECTIONS_KEYS, ("", ""), lambda tags: True, ())
    out = []
    for group in groups:
        (client, *more_clients), (server, *more_servers) = group.values
        packets = group.rates[2]
        if more_clients or more_servers or packets is None or group.rtt is None:
            continue
        if "N/A" in (client, server) or any(c in client + server for c in '\n\\"'):
            continue
        out.append(((client, server), packets, group.rtt))
    return out


def build(seed: int, start: int) -> Fortnight:
    """The fortnight of ``seed`` starting at ``start`` (Unix seconds, rounded down to a day)."""
    start -= start % DAY
    options = SimulatorOptions(seed=seed, connections_universe=UNIVERSE, weekly_swing=WEEKLY_SWING)
    network = NetworkData(seed, UNIVERSE)
    rng = random.Random(seed)
    pairs = _pairs(network)
    busy = [p for p in pairs if p[1] >= 3.0]
    quiet = [p for p in pairs if p[1] < 0.8]
    rng.shuffle(busy)
    # Cross-region pairs: a normal round trip of 150-250 ms, steady.
    cross_region = busy[:3]
    landscape = tuple(
        Scenario(
            kind="rtt_spike",
            match={"client_service": c, "server_service": s},
            factor=rng.uniform(150_000, 250_000) / rtt,
        )
        for (c, s), _, rtt in cross_region
    )
    others = busy[3:]

    # One incident per slot: slots are 6-hour quarters of days 1..13 (day 0 builds the
    # baselines), taken in a seeded order so no two incidents overlap.
    slots = [(day, quarter) for day in range(1, DAYS) for quarter in range(4)]
    rng.shuffle(slots)

    def when(minutes: int) -> tuple[int, int]:
        day, quarter = slots.pop()
        # starts at least 30 minutes into its slot and ends at least 30 minutes before the next
        latest = max(31, 6 * 60 - minutes - 30)
        begin = start + day * DAY + quarter * 6 * 3600 + rng.randrange(30, latest) * 60 + 17
        return begin, begin + minutes * 60

    incidents: list[Incident] = []

    def pair_labels(pair: tuple[str, str]) -> dict[str, str]:
        return {"client_service": pair[0], "server_service": pair[1]}

    storm, resets, refusals, timeouts, fast, dark = (pair_labels(p) for p, _, _ in others[:6])
    slow = pair_labels(cross_region[0][0])
    data_incidents: tuple[tuple[str, ScenarioKind, dict[str, str], float, str, int], ...] = (
        # name, scenario kind, labels (as Datadog names them), factor, alert, minutes
        ("retransmit storm", "retransmit_storm", storm, 50, "DatadogCNMHighRetransmitRatio", 60),
        ("RTT x3 on a cross-region pair", "rtt_spike", slow, 3, "DatadogCNMHighRTT", 75),
        ("RTT x16 on a fast pair", "rtt_spike", fast, 16, "DatadogCNMHighRTT", 60),
        ("TCP resets spike", "resets_spike", resets, 40, "DatadogCNMResetsSpiking", 45),
        ("connection refusals spike", "refusals_spike", refusals, 50,
         "DatadogCNMRefusalsSpiking", 45),
        ("connection timeouts spike", "timeouts_spike", timeouts, 50,
         "DatadogCNMTimeoutsSpiking", 45),
        ("service pair goes dark", "dark", dark, 1, "DatadogCNMTrafficStopped", 60),
        ("DNS SERVFAIL spike", "dns_servfail_spike", {"network.dns_query": "api.stripe.com"},
         40, "DatadogDNSServfailSpiking", 45),
        ("DNS timeout spike", "dns_timeout_spike", {"network.dns_query": "example.com"},
         30, "DatadogDNSTimeoutsSpiking", 45),
        ("DNS NXDOMAIN surge", "dns_nxdomain_spike", {"network.dns_query": "münchen.example"},
         20, "DatadogDNSNxdomainSpiking", 45),
    )  # fmt: skip
    for name, kind, labels, factor, alert, minutes in data_incidents:
        begin, end = when(minutes)
        scenario = Scenario(kind, labels, factor, start=begin, end=end, blend=True)
        exported = {k.replace(".", "_"): v for k, v in labels.items()}
        incidents.append(Incident(name, "data", begin, end, exported, (alert,), scenario))

    # A query that starts answering nothing (a filter matching nothing any more, say):
    # every connection is dark to it for four hours.
    begin, end = when(4 * 60)
    incidents.append(
        Incident(
            "connections query answers nothing", "data", begin, end,
            {"collector": "connections", "query": "svc_to_svc"}, ("DatadogExporterQueryEmpty",),
            Scenario(kind="dark", match={}, factor=1, start=begin, end=end, blend=True),
            allowed=("DatadogExporterDataStale",),
        )
    )  # fmt: skip

    # Cases: a P1 case is opened, and a surge of P2 cases.
    for priority, extra, minutes in (("P1", 1, 180), ("P2", 6, 120)):
        begin, end = when(minutes)
        incidents.append(
            Incident(
                f"{extra} open {priority} case(s)", "cases", begin, end,
                {"priority": priority}, ("DatadogOpenCasesAboveThreshold",),
                detail={"extra": str(extra)},
            )
        )  # fmt: skip

    # Datadog-side faults: only the exporter's own alerts may fire.
    exporter_alerts = ("DatadogExporterPollsFailing", "DatadogExporterDataStale")
    for name, status, minutes, alerts in (
        ("Datadog answers 5xx", "500", 45, exporter_alerts),
        ("Datadog answers 429", "429", 40, ("DatadogExporterRateLimited",)),
    ):
        begin, end = when(minutes)
        incidents.append(
            Incident(
                name, "datadog", begin, end, {}, alerts,
                allowed=(*exporter_alerts, "DatadogExporterRateLimited"),
                detail={"status": status},
            )
        )  # fmt: skip

    # The organisation outgrows max_series: rows are dropped for two hours.
    begin, end = when(120)
    incidents.append(
        Incident(
            "rows dropped by max_series", "exporter", begin, end,
            {"collector": "connections", "query": "svc_to_svc"}, ("DatadogExporterRowsDropped",),
            detail={"rows": "25"},
        )
    )  # fmt: skip

    # Noise: short blips on pairs sending less than a packet a second, three a day.
    blip_kinds: tuple[tuple[ScenarioKind, float], ...] = (
        ("retransmit_storm", 50),
        ("resets_spike", 15),
        ("refusals_spike", 20),
        ("timeouts_spike", 20),
        ("rtt_spike", 4),
    )
    for day in range(1, DAYS):
        for _ in range(3):
            pair = rng.choice(quiet)[0]
            kind, factor = rng.choice(blip_kinds)
            begin = start + day * DAY + rng.randrange(0, DAY - 3600)
            end = begin + rng.randrange(5, 30) * 60
            scenario = Scenario(
                kind=kind,
                match=pair_labels(pair),
                factor=factor,
                start=begin,
                end=end,
                blend=True,
            )
            incidents.append(
                Incident(
                    f"noise: {kind} on a quiet pair",
                    "noise",
                    begin,
                    end,
                    pair_labels(pair),
                    (),
                    scenario,
                )
            )
    incidents.extend(_network_health(seed, start, when))
    incidents.sort(key=lambda i: i.start)
    return Fortnight(seed, start, options, landscape, tuple(incidents))


def _network_health(
    seed: int, start: int, when: Callable[[int], tuple[int, int]]
) -> list[Incident]:
    """Network Health Insights: certificates running out, failure bursts and a denial
    (one slot each), and noise no alert should page for: three-minute blips on busy
    pairs (over a threshold for less than the alerts' ``for``) and failure bursts on
    pairs under the alerts' volume floor. The pairs are the simulator's
    (simulator/network_health.py); labels as the exporter names them."""
    incidents: list[Incident] = []

    def failures(category: str, client: str, server: str) -> dict[str, str]:
        return {"category": category, "client_service": client, "server_service": server}

    # A certificate whose renewal failed: 14 days left for a day (no alert), then 13
    # (DatadogNetworkHealthCertificateExpiringSoon) until it is renewed three hours later.
    begin, end = when(180)
    incidents.append(
        Incident(
            "certificate crosses 14 days to expiry", "data", begin, end,
            {"domain": "api.example.com"}, ("DatadogNetworkHealthCertificateExpiringSoon",),
            Scenario("nhi_certificate_expiry", {"domain_name": "api.example.com"}, 14,
                     start=begin - DAY, end=end, blend=True),
        )
    )  # fmt: skip
    # A certificate on its expiry day (less than a day left: 0 whole days, which Datadog
    # reports as expired) for three hours until it is replaced. The fortnight has no room
    # for the countdown before it (14 days of DatadogNetworkHealthCertificateExpiringSoon):
    # the certificate jumps from its renewal cycle to its last day.
    begin, end = when(180)
    incidents.append(
        Incident(
            "certificate expired", "data", begin, end, {"domain": "shop.example.com"},
            ("DatadogNetworkHealthCertificateExpired",),
            Scenario("nhi_certificate_expiry", {"domain_name": "shop.example.com"}, 0.5,
                     start=begin, end=end, blend=True),
        )
    )  # fmt: skip
    bursts: tuple[tuple[str, ScenarioKind, dict[str, str], dict[str, str], float, str], ...] = (
        # name, scenario kind, match (Datadog's names), labels, factor, alert
        ("DNS failure burst", "nhi_dns_failure_burst",
         {"client_service": "frontend", "dns_query": "api.stripe.com"},
         failures("dns", "frontend", "coredns"), 50, "DatadogNetworkHealthDNSFailures"),
        ("TCP failure burst", "nhi_tcp_failure_burst",
         {"client_service": "api-gateway", "server_service": "inventory"},
         failures("tcp", "api-gateway", "inventory"), 30, "DatadogNetworkHealthTCPFailures"),
        ("security-group denial", "nhi_security_group_denial",
         {"client_service": "shipping", "server_service": "redis-cache"},
         failures("security-group", "shipping", "redis-cache"), 30,
         "DatadogNetworkHealthSecurityGroupDenials"),
    )  # fmt: skip
    for name, kind, match, labels, factor, alert in bursts:
        begin, end = when(45)
        scenario = Scenario(kind, match, factor, start=begin, end=end, blend=True)
        incidents.append(Incident(name, "data", begin, end, labels, (alert,), scenario))

    noise: tuple[tuple[str, ScenarioKind, dict[str, str], dict[str, str], float, int], ...] = (
        # name, scenario kind, match, labels, factor, minutes
        ("three-minute DNS failure blip", "nhi_dns_failure_burst",
         {"client_service": "checkout"}, failures("dns", "checkout", "coredns"), 50, 3),
        ("three-minute TCP failure blip", "nhi_tcp_failure_burst",
         {"server_service": "postgres-main"}, failures("tcp", 'legacy "quoted" svc',
                                                       "postgres-main"), 150, 3),
        ("three-minute security-group denial blip", "nhi_security_group_denial",
         {"client_service": "shipping"}, failures("security-group", "shipping", "redis-cache"),
         100, 3),
        ("DNS failure burst under the volume floor", "nhi_dns_failure_burst",
         {"client_service": "nightly-reports"}, failures("dns", "nightly-reports", "coredns"),
         50, 45),
        ("TCP failure burst under the volume floor", "nhi_tcp_failure_burst",
         {"client_service": "cron"}, failures("tcp", "cron", "smtp-relay"), 50, 45),
    )  # fmt: skip
    # Each kind twice, in slots of their own (so they never overlap an incident).
    for name, kind, match, labels, factor, minutes in (*noise, *noise):
        begin, end = when(minutes)
        scenario = Scenario(kind, match, factor, start=begin, end=end, blend=True)
        incidents.append(Incident(f"noise: {name}", "noise", begin, end, labels, (), scenario))
    return incidents
