"""The deterministic universe of network connections and DNS flows, and its aggregation.

Pure: no I/O and no clock (callers pass the time window). Same seed and
universe size give the same answers, byte for byte. Owns the data shape of
the two CNM endpoints; it must not know about HTTP.

Performance: grouping a universe is cached per (grouping, filter, scenarios),
independent of time; a request then only scales the cached per-second rates
to its window, so a 7,500-row answer over 20,000 connections costs a few
milliseconds.
"""

from __future__ import annotations

import math
import random
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from simulator.options import Scenario
from simulator.query import Predicate, term_predicate

BUCKET_SECONDS = 300
DAY_SECONDS = 86400
DAILY_SWING = 0.3
NA = "N/A"

# Values a client must survive: quotes, backslashes, newlines, Unicode, N/A.
TRICKY_SERVICES = (
    'legacy "quoted" svc',
    "win\\share",
    "multi\nline",
    "zürich-ß",
    "東京",
    "🚀-launcher",
)
NAMED_SERVICES = (
    "checkout",
    "payments-db",
    "cart",
    "frontend",
    "api-gateway",
    "auth",
    "inventory",
    "search",
    "recommendations",
    "shipping",
    "notifications",
    "redis-cache",
    "postgres-main",
    "kafka",
    *TRICKY_SERVICES,
)
UDP_SERVICES = ("coredns", "statsd")
TEAMS = ("networks", "payments", "storefront", "platform", "data", "sre", "équipe-été")
ENVS = ("prod", "prod", "prod", "staging", "dev")
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c", "eu-west-1a", "zürich-ß-1", "東京-1a")
NAMESPACES = ("default", "payments", "storefront", "kube-system", 'ns"quoted', "ns\\back")
PORTS = ("443", "5432", "6379", "9092", "80", "8080")

# Totals over the window (int64), in output order.
CONNECTION_TOTALS = (
    "bytes_sent_by_client",
    "bytes_sent_by_server",
    "packets_sent_by_client",
    "packets_sent_by_server",
    "tcp_retransmits",
    "tcp_resets",
    "tcp_refusals",
    "tcp_timeouts",
    "tcp_rto_count",
    "tcp_recovery_count",
    "tcp_probe0_count",
    "tcp_rcv_ooo_pack",
    "tcp_reord_seen",
    "tcp_delivered_ce",
)
# Documented as "connections per second from the client": not scaled by the window.
CONNECTION_RATES = ("tcp_established_connections", "tcp_closed_connections")
RTT = "rtt_micro_seconds"
CONNECTION_METRICS = (*CONNECTION_TOTALS, *CONNECTION_RATES)
_TCP_ONLY = frozenset(m for m in CONNECTION_METRICS if m.startswith("tcp_"))
_NEW_AGENT_ONLY = frozenset(
    (
        "tcp_rto_count",
        "tcp_recovery_count",
        "tcp_probe0_count",
        "tcp_rcv_ooo_pack",
        "tcp_reord_seen",
        "tcp_delivered_ce",
    )
)
_IDX = {name: i for i, name in enumerate(CONNECTION_METRICS)}

DNS_QUERIES = (
    "api.stripe.com",
    "payments-db.payments.svc.cluster.local",
    "checkout.storefront.svc.cluster.local",
    "example.com",
    "münchen.example",
    "東京.example.jp",
    'weird"name.example',
    "does-not-exist.internal",
    NA,
)
DEFAULT_DNS_GROUP_BY = ("network.dns_query",)

Tags = dict[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Flow:
    """One underlying connection (or DNS flow): its tags and per-second rates.

    `rates[i]` is None when the metric is unknown for this flow (absent != 0).
    """

    index: int
    tags: Tags
    rates: tuple[float | None, ...]
    rtt: float | None = None
    dns: tuple[float, ...] = ()  # dns: total/s, ok, nxdomain, servfail, other, timeout fractions


@dataclass(frozen=True, slots=True)
class Group:
    """Flows aggregated under one combination of group-by values (per-second rates)."""

    values: tuple[tuple[str, ...], ...]
    rates: tuple[float | None, ...]
    rtt: float | None
    dns: tuple[float, ...]
    phase: float


def _pick(rng: random.Random, pool: Sequence[str], na_share: float = 0.04) -> str:
    return NA if rng.random() < na_share else rng.choice(pool)


def _services(count: int) -> tuple[str, ...]:
    generated = tuple(f"svc-{i:04d}" for i in range(max(0, count - len(NAMED_SERVICES))))
    return NAMED_SERVICES + generated


def _team_of(service: str) -> str:
    return TEAMS[zlib.crc32(service.encode()) % len(TEAMS)]


def build_connections(seed: int, size: int) -> list[Flow]:
    """The universe of `size` connections for `seed`."""
    rng = random.Random(seed)
    services = _services(max(len(NAMED_SERVICES), size // 60))
    hosts = max(4, size // 4)
    flows: list[Flow] = []
    for i in range(size):
        if i == 0:
            client, server = "checkout", "payments-db"
        elif i < len(NAMED_SERVICES):
            client, server = NAMED_SERVICES[i], NAMED_SERVICES[(i + 1) % len(NAMED_SERVICES)]
        elif i % 12 == 5:
            client, server = rng.choice(services), rng.choice(UDP_SERVICES)
        else:
            client = rng.choice(services)
            server = NA if rng.random() < 0.04 else rng.choice(services)
        udp = server in UDP_SERVICES
        client_services: tuple[str, ...] = (client,)
        if i % 50 == 7:  # a host running two services carries both values
            client_services = tuple(sorted({client, rng.choice(NAMED_SERVICES[:14])}))
        client_team: tuple[str, ...] = (_team_of(client),)
        if i % 9 == 3:
            client_team = tuple(sorted({client_team[0], "sre"}))
        host = rng.randrange(hosts)
        tags: Tags = {
            "client_service": client_services,
            "server_service": (server,),
            "client_team": client_team,
            "server_team": (NA if server == NA else _team_of(server),),
            "client_env": (_pick(rng, ENVS),),
            "server_env": (_pick(rng, ENVS),),
            "client_availability_zone": (_pick(rng, ZONES),),
            "server_availability_zone": (_pick(rng, ZONES),),
            "client_kube_namespace": (_pick(rng, NAMESPACES, 0.1),),
            "server_kube_namespace": (_pick(rng, NAMESPACES, 0.1),),
            "client_host": (f"ip-10-0-{host // 250}-{host % 250}.ec2.internal",),
            "server_host": (f"ip-10-1-{i % 97}-{(i * 7) % 250}.ec2.internal",),
            "network.client.ip": (f"10.0.{i // 250 % 250}.{i % 250}",),
            "network.server.ip": (NA if server == NA else f"10.1.{i % 97}.{(i * 7) % 250}",),
            "network.server.port": ("53" if udp else rng.choice(PORTS),),
            "network.protocol": ("udp" if udp else "tcp",),
        }
        if i < 12:  # make sure the tricky values exist even in tiny universes
            tags["client_availability_zone"] = (ZONES[4 + i % 2] if i % 3 else NA,)
            tags["server_kube_namespace"] = (NAMESPACES[4 + i % 2],)
        old_agent = i % 4 == 1
        bytes_client = rng.lognormvariate(8, 1.5)
        packets_client = bytes_client / rng.uniform(300, 1400)
        packets_server = packets_client * rng.uniform(0.6, 1.1)
        established = rng.uniform(0.01, 3.0)
        base: dict[str, float] = {
            "bytes_sent_by_client": bytes_client,
            "bytes_sent_by_server": bytes_client * rng.uniform(0.2, 6.0),
            "packets_sent_by_client": packets_client,
            "packets_sent_by_server": packets_server,
            "tcp_retransmits": packets_client * rng.uniform(0.0002, 0.006),
            "tcp_resets": rng.uniform(0, 0.02),
            "tcp_refusals": rng.uniform(0, 0.005),
            "tcp_timeouts": rng.uniform(0, 0.005),
            "tcp_rto_count": rng.uniform(0, 0.01),
            "tcp_recovery_count": rng.uniform(0, 0.05),
            "tcp_probe0_count": rng.uniform(0, 0.002),
            "tcp_rcv_ooo_pack": packets_server * rng.uniform(0, 0.002),
            "tcp_reord_seen": rng.uniform(0, 0.01),
            "tcp_delivered_ce": rng.uniform(0, 0.01),
            "tcp_established_connections": established,
            "tcp_closed_connections": established * rng.uniform(0.9, 1.1),
        }
        rates = tuple(
            None
            if (udp and name in _TCP_ONLY) or (old_agent and name in _NEW_AGENT_ONLY)
            else base[name]
            for name in CONNECTION_METRICS
        )
        rtt = None if udp else rng.lognormvariate(7.5, 1.0)
        flows.append(Flow(index=i, tags=tags, rates=rates, rtt=rtt))
    return flows


def build_dns_flows(seed: int, size: int) -> list[Flow]:
    """The universe of `size` DNS flows (client -> resolver, per query) for `seed`."""
    rng = random.Random(seed ^ 0x5EED)
    services = _services(max(len(NAMED_SERVICES), size // 30))
    queries = DNS_QUERIES + tuple(f"svc-{i:04d}.internal" for i in range(size // 20))
    flows: list[Flow] = []
    for i in range(size):
        client = NAMED_SERVICES[i] if i < len(NAMED_SERVICES) else rng.choice(services)
        query = DNS_QUERIES[i] if i < len(DNS_QUERIES) else rng.choice(queries)
        team: tuple[str, ...] = (_team_of(client),)
        if i % 11 == 4:
            team = tuple(sorted({team[0], "sre"}))
        tags: Tags = {
            "network.dns_query": (query,),
            "client_service": (client,),
            "client_team": team,
            "client_env": (_pick(rng, ENVS),),
            "client_availability_zone": (_pick(rng, ZONES),),
            "client_host": (f"ip-10-0-{i % 50}-{(i * 3) % 250}.ec2.internal",),
            "server_service": ("coredns" if rng.random() < 0.8 else NA,),
            "server_host": (f"ip-10-2-0-{i % 8}.ec2.internal",),
            "network.server.ip": (f"10.2.0.{i % 8}",),
        }
        servfail = rng.uniform(0, 0.005)
        other = rng.uniform(0, 0.002)
        timeout = rng.uniform(0, 0.003) if i % 3 else 0.0
        # a name that does not exist never resolves: no successes, no success latency
        failing = query == "does-not-exist.internal"
        nxdomain = 1.0 - servfail - other - timeout if failing else rng.uniform(0, 0.02)
        ok = max(0.0, 1.0 - nxdomain - servfail - other - timeout)
        dns = (rng.uniform(0.05, 20.0), ok, nxdomain, servfail, other, timeout)
        success_latency = rng.uniform(200_000, 4_000_000) if i % 5 else None
        failure_latency = rng.uniform(1_000_000, 30_000_000)
        flows.append(
            Flow(
                index=i,
                tags=tags,
                rates=(success_latency, failure_latency),
                dns=dns,
            )
        )
    return flows


_SPIKED_COUNTS = {
    "resets_spike": ("tcp_resets", 0.05),
    "refusals_spike": ("tcp_refusals", 0.02),
    "timeouts_spike": ("tcp_timeouts", 0.02),
}
# DNS answer shares (indexes into Flow.dns) each DNS scenario raises, and the share it
# starts from when the flow has (almost) none.
_SPIKED_DNS = {"dns_nxdomain_spike": (2, 0.01), "dns_servfail_spike": (3, 0.01)}
_DNS_TIMEOUT = 5
_DNS_SHARE_CAP = 0.9


def _apply_scenarios(flow: Flow, scenarios: Sequence[Scenario]) -> Flow | None:
    """The flow as the scenarios shape it; None when a `dark` scenario removes it."""
    rates = list(flow.rates)
    rtt = flow.rtt
    dns = list(flow.dns)
    for scenario in scenarios:
        if not all(term_predicate(k, v)(flow.tags) for k, v in scenario.match.items()):
            continue
        if scenario.kind == "dark":
            return None
        if scenario.kind == "retransmit_storm":
            packets = rates[_IDX["packets_sent_by_client"]]
            current = rates[_IDX["tcp_retransmits"]]
            if packets is not None:
                # at least 0.5 % of packets before the factor: factor 50 means >= 25 %
                base = max(current or 0.0, packets * 0.005)
                rates[_IDX["tcp_retransmits"]] = min(packets, base * scenario.factor)
        elif scenario.kind in _SPIKED_COUNTS:
            name, least = _SPIKED_COUNTS[scenario.kind]
            current = rates[_IDX[name]]
            if current is not None or name == "tcp_resets":
                rates[_IDX[name]] = max(current or 0.0, least) * scenario.factor
        elif scenario.kind == "rtt_spike" and rtt is not None:
            rtt *= scenario.factor
        elif scenario.kind.startswith("dns_") and dns:
            index, least = _SPIKED_DNS.get(scenario.kind, (_DNS_TIMEOUT, 0.01))
            raised = min(_DNS_SHARE_CAP, max(dns[index], least) * scenario.factor)
            # the extra failures come out of the successful answers
            dns[1] = max(0.0, dns[1] - (raised - dns[index]))
            dns[index] = raised
    return Flow(index=flow.index, tags=flow.tags, rates=tuple(rates), rtt=rtt, dns=tuple(dns))


def _group_values(flow: Flow, keys: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    # A tag key no connection carries (a typo such as `client_servce`) groups every flow
    # under N/A, as Datadog answers it: the exporter reports such a field as unresolved.
    return tuple(flow.tags.get(key) or (NA,) for key in keys)


def _row_id(keys: Sequence[str], values: Sequence[Sequence[str]]) -> str:
    if not keys:
        return "*"
    return ", ".join(f"{k}:{','.join(v)}" for k, v in zip(keys, values, strict=True))


def aggregate(
    flows: Sequence[Flow],
    keys: Sequence[str],
    predicate: Predicate,
    scenarios: Sequence[Scenario] = (),
) -> list[Group]:
    """Group matching flows by `keys`; sorted by traffic, biggest first."""
    width = len(flows[0].rates) if flows else 0
    sums: dict[tuple[tuple[str, ...], ...], list[Any]] = {}
    for flow in flows:
        if not predicate(flow.tags):
            continue
        if scenarios:
            shaped = _apply_scenarios(flow, scenarios)
            if shaped is None:
                continue
            flow = shaped  # noqa: PLW2901
        values = _group_values(flow, keys)
        acc = sums.get(values)
        if acc is None:
            # rates..., rtt sum, rtt n, dns vector sums
            acc = [None] * width + [0.0, 0, [0.0] * 6, 0.0, 0]
            sums[values] = acc
        for j, rate in enumerate(flow.rates):
            if rate is not None:
                acc[j] = rate if acc[j] is None else acc[j] + rate
        if flow.rtt is not None:
            acc[width] += flow.rtt
            acc[width + 1] += 1
        if flow.dns:
            total = flow.dns[0]
            dns_acc = acc[width + 2]
            dns_acc[0] += total
            for j in range(1, 6):
                dns_acc[j] += total * flow.dns[j]
    groups = []
    for values, acc in sums.items():
        rtt_n = acc[width + 1]
        phase = (zlib.crc32(repr(values).encode()) % 6283) / 1000.0
        groups.append(
            Group(
                values=values,
                rates=tuple(acc[:width]),
                rtt=acc[width] / rtt_n if rtt_n else None,
                dns=tuple(acc[width + 2]),
                phase=phase,
            )
        )
    groups.sort(key=lambda g: (-_weight(g), repr(g.values)))
    return groups


def _weight(group: Group) -> float:
    if group.dns and group.dns[0]:
        return group.dns[0]
    first = group.rates[0] if group.rates else None
    return first or 0.0


def time_factor(bucket: int, phase: float) -> float:
    """How busy a group is in a 5-minute bucket: deterministic, between 0.55 and 1.45."""
    return 1.0 + 0.45 * math.sin(bucket * 0.61 + phase)


def daily_factor(bucket: int) -> float:
    """The daily rhythm of traffic in a 5-minute bucket: busiest at 15:00 UTC (x1.3),
    quietest at 03:00 UTC (x0.7). It scales volumes, not round-trip times, so ratios
    (retransmits per packet) keep their level through the day."""
    seconds_of_day = (bucket * BUCKET_SECONDS) % DAY_SECONDS
    return 1.0 + DAILY_SWING * math.sin(2 * math.pi * (seconds_of_day - 9 * 3600) / DAY_SECONDS)


WEEK_SECONDS = 7 * DAY_SECONDS
# The Unix epoch was a Thursday: Sunday 03:00 UTC is 3 days and 3 hours after it.
_WEEKLY_LOW = 3 * DAY_SECONDS + 3 * 3600


def weekly_factor(bucket: int, swing: float) -> float:
    """The weekly rhythm of traffic: 1 - swing on Sunday 03:00 UTC, 1 + swing half a
    week later (volumes only, like the daily rhythm)."""
    if not swing:
        return 1.0
    seconds = (bucket * BUCKET_SECONDS - _WEEKLY_LOW) % WEEK_SECONDS
    return 1.0 - swing * math.cos(2 * math.pi * seconds / WEEK_SECONDS)


def render_connection(
    keys: Sequence[str], group: Group, window: int, bucket: int, weekly_swing: float = 0.0
) -> dict[str, Any]:
    factor = time_factor(bucket, group.phase)
    volume = factor * daily_factor(bucket) * weekly_factor(bucket, weekly_swing)
    attributes: dict[str, Any] = {
        "group_bys": {k: list(v) for k, v in zip(keys, group.values, strict=True)}
    }
    scale = window * volume
    for name, rate in zip(CONNECTION_METRICS, group.rates, strict=True):
        if rate is None:
            continue
        if name in CONNECTION_RATES:
            attributes[name] = round(rate * volume)
        else:
            attributes[name] = int(rate * scale)
    if group.rtt is not None:
        attributes[RTT] = int(group.rtt * (2.0 - factor) * 0.5 + group.rtt * 0.5)
    return {
        "id": _row_id(keys, group.values),
        "type": "aggregated_connection",
        "attributes": attributes,
    }


def render_dns(
    keys: Sequence[str], group: Group, window: int, bucket: int, weekly_swing: float = 0.0
) -> dict[str, Any]:
    factor = time_factor(bucket, group.phase)
    scale = window * factor * daily_factor(bucket) * weekly_factor(bucket, weekly_swing)
    _total, ok, nxdomain, servfail, other, timeouts = group.dns
    n_nx, n_sf, n_other, n_to = (int(x * scale) for x in (nxdomain, servfail, other, timeouts))
    n_ok = int(ok * scale)
    failed = n_nx + n_sf + n_other
    failures = failed + n_to
    values: dict[str, int | None] = {
        "dns_total_requests": n_ok + failures,
        "dns_failures": failures,
        "dns_successful_responses": n_ok,
        "dns_failed_responses": failed,
        "dns_timeouts": n_to,
        "dns_responses.nxdomain": n_nx,
        "dns_responses.servfail": n_sf,
        "dns_responses.other": n_other,
        "dns_success_latency_percentile": None,
        "dns_failure_latency_percentile": None,
    }
    success_latency, failure_latency = group.rates
    if success_latency is not None and n_ok:
        values["dns_success_latency_percentile"] = int(success_latency)
    if failure_latency is not None and failures:
        values["dns_failure_latency_percentile"] = int(failure_latency)
    group_bys = [
        {"key": key, "value": value}
        for key, vals in zip(keys, group.values, strict=True)
        for value in vals
    ]
    return {
        "id": _row_id(keys, group.values),
        "type": "aggregated_dns",
        "attributes": {
            "group_bys": group_bys,
            "metrics": [
                {"key": key, "value": value} for key, value in values.items() if value is not None
            ],
        },
    }


class NetworkData:
    """Both CNM universes for one seed, with the grouping cache."""

    def __init__(
        self, seed: int, connections: int, cache_size: int = 64, weekly_swing: float = 0.0
    ) -> None:
        self.seed = seed
        self.weekly_swing = weekly_swing
        self._connections_size = connections
        self._connections: list[Flow] | None = None
        self._dns: list[Flow] | None = None
        self._cache: OrderedDict[tuple[Any, ...], list[Group]] = OrderedDict()
        self._cache_size = cache_size

    def warm(self) -> None:
        """Build both universes ahead of the first request."""
        _ = self.connections, self.dns_flows

    @property
    def connections(self) -> list[Flow]:
        if self._connections is None:
            self._connections = build_connections(self.seed, self._connections_size)
        return self._connections

    @property
    def dns_flows(self) -> list[Flow]:
        if self._dns is None:
            self._dns = build_dns_flows(self.seed, max(60, self._connections_size // 2))
        return self._dns

    def _groups(
        self,
        kind: str,
        keys: tuple[str, ...],
        filter_key: tuple[str, str],
        predicate: Predicate,
        scenarios: tuple[Scenario, ...],
    ) -> list[Group]:
        scenario_key = tuple(
            sorted((s.kind, tuple(sorted(s.match.items())), s.factor) for s in scenarios)
        )
        cache_key = (kind, keys, filter_key, scenario_key)
        cached = self._cache.get(cache_key)
        if cached is not None:
            self._cache.move_to_end(cache_key)
            return cached
        if kind == "connections":
            groups = aggregate(self.connections, keys, predicate, scenarios)
        else:
            groups = _aggregate_dns(self.dns_flows, keys, predicate, scenarios)
        self._cache[cache_key] = groups
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return groups

    def rows(
        self,
        kind: Literal["connections", "dns"],
        *,
        keys: tuple[str, ...],
        filter_key: tuple[str, str],
        predicate: Predicate,
        start: int,
        end: int,
        limit: int,
        scenarios: tuple[Scenario, ...] = (),
    ) -> list[dict[str, Any]]:
        """The answer rows of either CNM aggregate endpoint.

        Scenarios shape the windows they cover (see `Scenario.share_of`); a window only
        partly covered by blending scenarios mixes the answer with and without them, by
        the largest share among them (incidents that overlap in time share one weight)."""
        full: list[Scenario] = []
        partial: list[Scenario] = []
        weight = 0.0
        for scenario in scenarios:
            if scenario.endpoint != kind:
                continue
            share = scenario.share_of(start, end)
            if share >= 1.0:
                full.append(scenario)
            elif share > 0.0:
                partial.append(scenario)
                weight = max(weight, share)
        window, bucket = end - start, end // BUCKET_SECONDS
        render = render_connection if kind == "connections" else render_dns

        def answer(active: tuple[Scenario, ...]) -> list[dict[str, Any]]:
            groups = self._groups(kind, keys, filter_key, predicate, active)
            return [render(keys, g, window, bucket, self.weekly_swing) for g in groups[:limit]]

        plain = answer(tuple(full))
        if not partial:
            return plain
        return _mix_rows(plain, answer((*full, *partial)), weight, kind)[:limit]


def _mix_rows(
    normal: list[dict[str, Any]],
    shaped: list[dict[str, Any]],
    weight: float,
    kind: Literal["connections", "dns"],
) -> list[dict[str, Any]]:
    """Rows of a window ``weight`` of which the shaped answer covers: totals are the
    time-weighted mix (a row absent on one side counts 0 there), averages the same."""
    shaped_by_id = {row["id"]: row for row in shaped}
    normal_ids = {row["id"] for row in normal}
    out: list[dict[str, Any]] = []
    for row in [*normal, *(r for r in shaped if r["id"] not in normal_ids)]:
        other = shaped_by_id.get(row["id"])
        mine = row if row["id"] in normal_ids else None
        out.append(_mix_row(mine, other, weight, kind))
    return out


def _mix_row(
    normal: dict[str, Any] | None,
    shaped: dict[str, Any] | None,
    weight: float,
    kind: Literal["connections", "dns"],
) -> dict[str, Any]:
    base = normal if normal is not None else shaped
    assert base is not None
    if kind == "connections":
        a = normal["attributes"] if normal else {}
        b = shaped["attributes"] if shaped else {}
        attributes: dict[str, Any] = {"group_bys": base["attributes"]["group_bys"]}
        for name in (*CONNECTION_METRICS, RTT):
            if name not in a and name not in b:
                continue
            if name == RTT:
                # an average: weighted by the side(s) that carry traffic
                attributes[name] = (
                    int(a[name] * (1 - weight) + b[name] * weight)
                    if name in a and name in b
                    else a.get(name, b.get(name))
                )
            else:
                attributes[name] = round(a.get(name, 0) * (1 - weight) + b.get(name, 0) * weight)
        return {**base, "attributes": attributes}
    left = {m["key"]: m["value"] for m in (normal or {}).get("attributes", {}).get("metrics", [])}
    right = {m["key"]: m["value"] for m in (shaped or {}).get("attributes", {}).get("metrics", [])}
    metrics = []
    for key in dict.fromkeys([*left, *right]):
        if key.endswith("_percentile"):
            value = (
                right.get(key, left.get(key)) if weight >= 0.5 else left.get(key, right.get(key))
            )
        else:
            value = round(left.get(key, 0) * (1 - weight) + right.get(key, 0) * weight)
        metrics.append({"key": key, "value": value})
    return {**base, "attributes": {**base["attributes"], "metrics": metrics}}


def _aggregate_dns(
    flows: Sequence[Flow],
    keys: Sequence[str],
    predicate: Callable[[Any], bool],
    scenarios: Sequence[Scenario] = (),
) -> list[Group]:
    """DNS groups: traffic sums, and latencies averaged over the flows that report them."""
    groups = aggregate(flows, keys, predicate, scenarios)
    # `aggregate` summed the latencies; divide by the number of flows that had one.
    counts: dict[tuple[tuple[str, ...], ...], list[int]] = {}
    for flow in flows:
        if predicate(flow.tags):
            entry = counts.setdefault(_group_values(flow, keys), [0, 0])
            entry[0] += flow.rates[0] is not None
            entry[1] += flow.rates[1] is not None
    out = []
    for group in groups:
        n_success, n_failure = counts[group.values]
        success, failure = group.rates
        out.append(
            Group(
                values=group.values,
                rates=(
                    success / n_success if success is not None and n_success else None,
                    failure / n_failure if failure is not None and n_failure else None,
                ),
                rtt=None,
                dns=group.dns,
                phase=group.phase,
            )
        )
    return out
