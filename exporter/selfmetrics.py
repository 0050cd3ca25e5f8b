"""The exporter's own metrics, in a prometheus_client registry of their own.

Counters and process figures are a few dozen series, so prometheus_client's usual machinery
is fine for them (the data series are rendered elsewhere, as text). Per-query state (the
scheduler's) is read at scrape time and rendered as text (one sample per query each,
thousands with thousands of queries), so a removed query's series vanish with it; rate-limit
state (each client's) is read at scrape time too. This module reads both through the shapes
it declares (:class:`QueryStatus`, :class:`RateLimitView`) and imports neither owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from . import __version__
from .config.schema import DEFAULT_ACCOUNT
from .exposition import Family, escape_label_value, format_value


class QueryStatus(Protocol):
    """What the per-query families read of a query (the scheduler's QueryState is one)."""

    collector: str
    name: str
    interval: float
    window: float | None
    up: bool
    last_success: float | None  # Unix time
    last_duration: float | None
    series: int
    serving_stale: bool


@dataclass
class RateLimitView:
    """One endpoint of one account as /metrics shows it (made by datadog.ratelimit)."""

    account: str
    endpoint: str
    limit: int | None
    remaining: int | None
    period: float | None
    blocked_until_unix: float | None


# One sample per query each. At thousands of queries these are most of the self-metrics, so
# they are rendered as text here (prometheus_client formats each sample in Python, which would
# make every scrape cost a multiple of copying the data series).
UP = Family(
    "datadog_exporter_up",
    "1 if the last poll of the query succeeded and the next one is not overdue, else 0.",
)
LAST_SUCCESS = Family(
    "datadog_exporter_last_success_timestamp_seconds",
    "Unix time of the query's last successful poll.",
)
DURATION = Family(
    "datadog_exporter_poll_duration_seconds",
    "Wall time of the query's last poll, retries and rendering included.",
)
SERIES = Family(
    "datadog_exporter_series", "Data series the query currently contributes to /metrics."
)
WINDOW = Family(
    "datadog_exporter_window_seconds",
    "Length of the query's time window; divide window totals by it for per-second rates.",
)
INTERVAL = Family("datadog_exporter_interval_seconds", "How often the query is polled.")
STALE = Family(
    "datadog_exporter_serving_stale",
    "1 while the query is down (last poll failed, or overdue) and an earlier poll's "
    "series are still served.",
)
QUERY_FAMILIES = (UP, LAST_SUCCESS, DURATION, SERIES, WINDOW, INTERVAL, STALE)


def render_query_states(states: Iterable[QueryStatus]) -> bytes:
    """The per-query families, every query's sample of each (headers even with none)."""
    lines: dict[Family, list[str]] = {family: [] for family in QUERY_FAMILIES}
    for state in states:
        labels = (
            f'{{collector="{escape_label_value(state.collector)}",'
            f'query="{escape_label_value(state.name)}"}} '
        )
        lines[UP].append(labels + ("1\n" if state.up else "0\n"))
        if state.last_success is not None:
            lines[LAST_SUCCESS].append(f"{labels}{format_value(state.last_success)}\n")
        if state.last_duration is not None:
            lines[DURATION].append(f"{labels}{format_value(state.last_duration)}\n")
        lines[SERIES].append(f"{labels}{state.series}\n")
        if state.window is not None:
            lines[WINDOW].append(f"{labels}{format_value(state.window)}\n")
        lines[INTERVAL].append(f"{labels}{format_value(state.interval)}\n")
        lines[STALE].append(labels + ("1\n" if state.serving_stale else "0\n"))
    return b"".join(
        family.header() + "".join(family.name + line for line in samples).encode()
        for family, samples in lines.items()
    )


class _RateLimitCollector(Collector):
    def __init__(self, rate_limits: Callable[[], Iterable[RateLimitView]]):
        self._rate_limits = rate_limits

    def collect(self) -> Iterator[Metric]:
        limit = GaugeMetricFamily(
            "datadog_exporter_rate_limit_limit",
            "Requests allowed per rate-limit period (X-RateLimit-Limit).",
            labels=["account", "endpoint"],
        )
        remaining = GaugeMetricFamily(
            "datadog_exporter_rate_limit_remaining",
            "Requests left in the current rate-limit period (X-RateLimit-Remaining).",
            labels=["account", "endpoint"],
        )
        period = GaugeMetricFamily(
            "datadog_exporter_rate_limit_period_seconds",
            "Length of the rate-limit period (X-RateLimit-Period).",
            labels=["account", "endpoint"],
        )
        blocked = GaugeMetricFamily(
            "datadog_exporter_rate_limited_until_timestamp_seconds",
            "Unix time before which no call goes to the endpoint after a 429 (0 when not limited).",
            labels=["account", "endpoint"],
        )
        for view in self._rate_limits():
            where = [view.account, view.endpoint]
            if view.limit is not None:
                limit.add_metric(where, float(view.limit))
            if view.remaining is not None:
                remaining.add_metric(where, float(view.remaining))
            if view.period is not None:
                period.add_metric(where, view.period)
            blocked.add_metric(where, view.blocked_until_unix or 0.0)
        yield from (limit, remaining, period, blocked)


class _LoopCollector(Collector):
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def collect(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily(
            "datadog_exporter_asyncio_tasks",
            "Tasks alive on the exporter's event loop (one per query plus a few for serving).",
        )
        if self.loop is not None:
            tasks.add_metric([], float(len(asyncio.all_tasks(self.loop))))
        yield tasks


class SelfMetrics:
    """Counters the I/O shells increment, plus the state collector; rendered per scrape."""

    def __init__(self) -> None:
        # Go exporters expose no `_created` series; they only double the counters' output.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.api_requests = Counter(
            "datadog_exporter_api_requests",
            "Requests sent to the Datadog API, by account, endpoint and HTTP status "
            "(or timeout / connection_error).",
            ["account", "endpoint", "code"],
            registry=self.registry,
        )
        self.poll_errors = Counter(
            "datadog_exporter_poll_errors",
            "Failed polls by reason (rate_limited, rate_budget, http_error, server_error, timeout, "
            "dns_error, connection_refused, tls_error, connection_error, too_large, "
            "decode_error, credentials, internal_error).",
            ["collector", "query", "reason"],
            registry=self.registry,
        )
        self.loop_restarts = Counter(
            "datadog_exporter_poll_loop_restarts",
            "Times a query's poll loop ended unexpectedly and was restarted (a bug; the log "
            "has the error).",
            ["collector", "query"],
            registry=self.registry,
        )
        self.dropped_rows = Counter(
            "datadog_exporter_dropped_rows",
            "Rows of Datadog answers dropped because the query would exceed its max_series.",
            ["collector", "query"],
            registry=self.registry,
        )
        self.invalid_values = Counter(
            "datadog_exporter_invalid_values",
            "Samples left out because Datadog sent a number Prometheus cannot read "
            "(beyond the float64 range).",
            ["collector", "query"],
            registry=self.registry,
        )
        self.build_info = Gauge(
            "datadog_exporter_build_info",
            "Always 1; labels carry the exporter and Python versions.",
            ["version", "python_version"],
            registry=self.registry,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.reload_successful = Gauge(
            "datadog_exporter_config_last_reload_successful",
            "1 if the last configuration load (start-up or reload) succeeded, else 0.",
            registry=self.registry,
        )
        self.reload_success_time = Gauge(
            "datadog_exporter_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
            registry=self.registry,
        )
        self.shard_info = Gauge(
            "datadog_exporter_shard_info",
            "Always 1; labels say which shard (0-based index) of how many this replica is.",
            ["index", "count"],
            registry=self.registry,
        )
        # The count again as a number: PromQL cannot compare a label with a value, and the
        # shipped DatadogExporterShardsMissing alert compares it with the indexes reporting.
        self.shards = Gauge(
            "datadog_exporter_shards",
            "Replicas the configured queries are split over (the shard count; 1 unsharded).",
            registry=self.registry,
        )
        self.owned_queries = Gauge(
            "datadog_exporter_owned_queries",
            "Queries this replica polls: its shard's share of the configured queries.",
            registry=self.registry,
        )
        self.configured_queries = Gauge(
            "datadog_exporter_configured_queries",
            "Queries in the configuration, over all shards.",
            registry=self.registry,
        )
        self._states: Callable[[], Iterable[QueryStatus]] = list
        # promhttp's promhttp_metric_handler_requests_in_flight, under this exporter's prefix.
        self.scrapes_in_flight = Gauge(
            "datadog_exporter_scrapes_in_flight",
            "Requests to the metrics path being served now, this one included.",
            registry=self.registry,
        )
        self.scrapes_rejected = Counter(
            "datadog_exporter_scrapes_rejected",
            "Requests to the metrics path answered 503 because --web.max-requests were in flight.",
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self._loop_collector = _LoopCollector()
        self.registry.register(self._loop_collector)

    def watch_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Report the event loop's task count (a leak shows as a count that keeps growing)."""
        self._loop_collector.loop = loop

    def watch(
        self,
        states: Callable[[], Iterable[QueryStatus]],
        rate_limits: Callable[[], Iterable[RateLimitView]],
    ) -> None:
        """Register the per-query and per-endpoint state readers (once, at start-up)."""
        self._states = states
        self.registry.register(_RateLimitCollector(rate_limits))

    def config_loaded(self, ok: bool, now: float) -> None:
        self.reload_successful.set(1 if ok else 0)
        if ok:
            self.reload_success_time.set(now)

    def set_shard(self, index: int, count: int, owned: int, configured: int) -> None:
        self.shard_info.clear()
        self.shard_info.labels(str(index), str(count)).set(1)
        self.shards.set(count)
        self.owned_queries.set(owned)
        self.configured_queries.set(configured)

    def count_response(self, endpoint: str, code: str, account: str = DEFAULT_ACCOUNT) -> None:
        self.api_requests.labels(account, endpoint, code).inc()

    def _query_counters(self) -> tuple[Counter, ...]:
        return (self.dropped_rows, self.invalid_values, self.loop_restarts)

    def show_query(self, collector: str, name: str) -> None:
        """Show a new query's loss counters at 0, so Prometheus' increase() sees the first
        dropped row, invalid value or loop restart (a series born at 1 shows no increase)."""
        for counter in self._query_counters():
            counter.labels(collector, name)

    def forget_query(self, collector: str, name: str, reasons: Iterable[str]) -> None:
        """Drop a removed query's counters so it vanishes from /metrics."""
        for reason in reasons:
            with contextlib.suppress(KeyError):
                self.poll_errors.remove(collector, name, reason)
        for counter in self._query_counters():
            with contextlib.suppress(KeyError):
                counter.remove(collector, name)

    def render(self) -> bytes:
        return generate_latest(self.registry) + render_query_states(self._states())


def self_metric_names() -> frozenset[str]:
    """Every self-metric name as it appears on /metrics (counters with ``_total``)."""
    metrics = SelfMetrics()
    metrics.watch(list, list)  # no queries: the state families still describe themselves
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return frozenset(names | {family.name for family in QUERY_FAMILIES})
