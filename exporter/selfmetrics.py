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
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from . import __version__
from .config.schema import DEFAULT_ACCOUNT
from .exposition import Family, Value, escape_label_value, format_value


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
    rows: int | None  # None before the first successful poll
    group_by_unresolved: tuple[tuple[str, bool], ...]


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
_PER_QUERY = ("collector", "query")
UP = Family(
    "datadog_exporter_up",
    "1 if the last poll of the query succeeded and the next one is not overdue, else 0.",
    labels=_PER_QUERY,
)
LAST_SUCCESS = Family(
    "datadog_exporter_last_success_timestamp_seconds",
    "Unix time of the query's last successful poll.",
    labels=_PER_QUERY,
    value=Value.TIMESTAMP,
)
DURATION = Family(
    "datadog_exporter_poll_duration_seconds",
    "Wall time of the query's last poll, retries and rendering included.",
    labels=_PER_QUERY,
)
SERIES = Family(
    "datadog_exporter_series",
    "Data series the query currently contributes to /metrics.",
    labels=_PER_QUERY,
)
WINDOW = Family(
    "datadog_exporter_window_seconds",
    "Length of the query's time window; divide window totals by it for per-second rates.",
    labels=_PER_QUERY,
    note="Connections and dns queries only.",
)
INTERVAL = Family(
    "datadog_exporter_interval_seconds", "How often the query is polled.", labels=_PER_QUERY
)
STALE = Family(
    "datadog_exporter_serving_stale",
    "1 while the query is down (last poll failed, or overdue) and an earlier poll's "
    "series are still served.",
    labels=_PER_QUERY,
)
ANSWER_ROWS = Family(
    "datadog_exporter_answer_rows",
    "Rows (connections, DNS rows, case groups, audience connections) in the query's last "
    "successful Datadog answer, counted before max_series drops any. 0: the query succeeds "
    "but matches nothing (check its filters, tags and group_by); up stays 1. No sample "
    "before the first successful poll.",
    labels=_PER_QUERY,
    note="A query that succeeds and matches nothing: datadog_exporter_up == 1 and on "
    "(collector, query) datadog_exporter_answer_rows == 0.",
)
GROUP_BY_UNRESOLVED = Family(
    "datadog_exporter_group_by_unresolved",
    "One sample per configured group_by field of the query: 1 when the field was N/A or "
    "absent in every row of the last non-empty answer (most often a field Datadog does not "
    "know: check its spelling), 0 when some row resolved it. No sample before the first "
    "non-empty answer.",
    labels=(*_PER_QUERY, "field"),
)
QUERY_FAMILIES = (
    UP,
    LAST_SUCCESS,
    DURATION,
    SERIES,
    WINDOW,
    INTERVAL,
    STALE,
    ANSWER_ROWS,
    GROUP_BY_UNRESOLVED,
)

# The families kept by prometheus_client: declared here once, each object below is made from
# its declaration, so the metrics reference (python -m exporter.docs) reads what is served.
_PER_ENDPOINT = ("account", "endpoint")
API_REQUESTS = Family(
    "datadog_exporter_api_requests",
    "Requests sent to the Datadog API, by account, endpoint and HTTP status "
    "(or, with no answer, the network failure's reason: timeout, dns_error, "
    "connection_refused, tls_error, connection_error).",
    "counter",
    labels=(*_PER_ENDPOINT, "code"),
    value=Value.COUNTER,
)
POLL_ERRORS = Family(
    "datadog_exporter_poll_errors",
    # The reasons are listed once, from the error classes (scheduler.ERROR_REASONS): the
    # metrics reference's label table shows them.
    "Failed polls by reason (a short label such as timeout or unauthorized; the log line of "
    "each failure has the error).",
    "counter",
    labels=(*_PER_QUERY, "reason"),
    value=Value.COUNTER,
    note="unauthorized is an HTTP 401 and forbidden a 403: the log line names the key, the "
    "base URL and site, and the permission to check.",
)
LOOP_RESTARTS = Family(
    "datadog_exporter_poll_loop_restarts",
    "Times a query's poll loop ended unexpectedly and was restarted (a bug; the log "
    "has the error).",
    "counter",
    labels=_PER_QUERY,
    value=Value.COUNTER,
    note="Shown at 0 from the query's start; anything else is a bug: see the log.",
)
DROPPED_ROWS = Family(
    "datadog_exporter_dropped_rows",
    "Rows of Datadog answers dropped because the query would exceed its max_series.",
    "counter",
    labels=_PER_QUERY,
    value=Value.COUNTER,
    note="Shown at 0 from the query's start, so increase() sees the first.",
)
INVALID_VALUES = Family(
    "datadog_exporter_invalid_values",
    "Samples left out because Datadog sent a value the exporter cannot read: a number "
    "beyond the float64 range, or (network_health, a preview endpoint) a value of the "
    "wrong type.",
    "counter",
    labels=_PER_QUERY,
    value=Value.COUNTER,
    note="Shown at 0 from the query's start, so increase() sees the first.",
)
RATE_LIMIT = Family(
    "datadog_exporter_rate_limit_limit",
    "Requests allowed per rate-limit period (X-RateLimit-Limit).",
    labels=_PER_ENDPOINT,
)
RATE_LIMIT_REMAINING = Family(
    "datadog_exporter_rate_limit_remaining",
    "Requests left in the current rate-limit period (X-RateLimit-Remaining).",
    labels=_PER_ENDPOINT,
)
RATE_LIMIT_PERIOD = Family(
    "datadog_exporter_rate_limit_period_seconds",
    "Length of the rate-limit period (X-RateLimit-Period).",
    labels=_PER_ENDPOINT,
)
RATE_LIMITED_UNTIL = Family(
    "datadog_exporter_rate_limited_until_timestamp_seconds",
    "Unix time before which no call goes to the endpoint after a 429 (0 when not limited).",
    labels=_PER_ENDPOINT,
    value=Value.TIMESTAMP,
)
ASYNCIO_TASKS = Family(
    "datadog_exporter_asyncio_tasks",
    "Tasks alive on the exporter's event loop (one per query plus a few for serving).",
    note="Steady unless something leaks.",
)
SCRAPES_IN_FLIGHT = Family(
    "datadog_exporter_scrapes_in_flight",
    "Requests to the metrics path being served now, this one included.",
    note="promhttp's promhttp_metric_handler_requests_in_flight, under this exporter's prefix.",
)
SCRAPES_REJECTED = Family(
    "datadog_exporter_scrapes_rejected",
    "Requests to the metrics path answered 503 because --web.max-requests were in flight.",
    "counter",
    value=Value.COUNTER,
)
RELOAD_SUCCESSFUL = Family(
    "datadog_exporter_config_last_reload_successful",
    "1 if the last configuration load (start-up or reload) succeeded, else 0.",
)
RELOAD_SUCCESS_TIME = Family(
    "datadog_exporter_config_last_reload_success_timestamp_seconds",
    "Unix time of the last successful configuration load.",
    value=Value.TIMESTAMP,
)
BUILD_INFO = Family(
    "datadog_exporter_build_info",
    "Always 1; labels carry the exporter and Python versions.",
    labels=("version", "python_version"),
    value=Value.INFO,
)
SHARD_INFO = Family(
    "datadog_exporter_shard_info",
    "Always 1; labels say which shard (0-based index) of how many this replica is.",
    labels=("index", "count"),
    value=Value.INFO,
    note="index 0 and count 1 when unsharded.",
)
# The count again as a number: PromQL cannot compare a label with a value, and the
# shipped DatadogExporterShardsMissing alert compares it with the indexes reporting.
SHARDS = Family(
    "datadog_exporter_shards",
    "Replicas the configured queries are split over (the shard count; 1 unsharded).",
    note="For rules comparing it with the indexes reporting (the shipped "
    "DatadogExporterShardsMissing alert).",
)
OWNED_QUERIES = Family(
    "datadog_exporter_owned_queries",
    "Queries this replica polls: its shard's share of the configured queries.",
)
CONFIGURED_QUERIES = Family(
    "datadog_exporter_configured_queries",
    "Queries in the configuration, over all shards.",
)
# What prometheus_client's ProcessCollector serves on Linux, as it words it (a test holds it
# to that); declared so the reference lists them and the catalog knows them.
PROCESS_FAMILIES = (
    Family("process_virtual_memory_bytes", "Virtual memory size in bytes."),
    Family("process_resident_memory_bytes", "Resident memory size in bytes."),
    Family(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        value=Value.TIMESTAMP,
    ),
    Family(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds.",
        "counter",
        value=Value.COUNTER,
    ),
    Family("process_open_fds", "Number of open file descriptors."),
    Family("process_max_fds", "Maximum number of open file descriptors."),
)
# Every self-metric, in the order the reference lists them.
SELF_FAMILIES: tuple[Family, ...] = (
    *QUERY_FAMILIES,
    API_REQUESTS,
    POLL_ERRORS,
    LOOP_RESTARTS,
    DROPPED_ROWS,
    INVALID_VALUES,
    RATE_LIMIT,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT_PERIOD,
    RATE_LIMITED_UNTIL,
    ASYNCIO_TASKS,
    SCRAPES_IN_FLIGHT,
    SCRAPES_REJECTED,
    RELOAD_SUCCESSFUL,
    RELOAD_SUCCESS_TIME,
    BUILD_INFO,
    SHARD_INFO,
    SHARDS,
    OWNED_QUERIES,
    CONFIGURED_QUERIES,
    *PROCESS_FAMILIES,
)


def sample_name(family: Family) -> str:
    """The name a family's samples carry on /metrics (a counter's end in ``_total``)."""
    return family.name + "_total" if family.type == "counter" else family.name


def _gauge_family(family: Family) -> GaugeMetricFamily:
    return GaugeMetricFamily(family.name, family.help, labels=list(family.labels))


def _counter(family: Family, registry: CollectorRegistry) -> Counter:
    return Counter(family.name, family.help, family.labels, registry=registry)


def _gauge(family: Family, registry: CollectorRegistry) -> Gauge:
    return Gauge(family.name, family.help, family.labels, registry=registry)


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
        if state.rows is not None:
            lines[ANSWER_ROWS].append(f"{labels}{state.rows}\n")
        for field, unresolved in state.group_by_unresolved:
            field_labels = f'{labels[:-2]},field="{escape_label_value(field)}"}} '
            lines[GROUP_BY_UNRESOLVED].append(field_labels + ("1\n" if unresolved else "0\n"))
    return b"".join(
        family.header() + "".join(family.name + line for line in samples).encode()
        for family, samples in lines.items()
    )


class _RateLimitCollector(Collector):
    def __init__(self, rate_limits: Callable[[], Iterable[RateLimitView]]):
        self._rate_limits = rate_limits

    def collect(self) -> Iterator[Metric]:
        limit = _gauge_family(RATE_LIMIT)
        remaining = _gauge_family(RATE_LIMIT_REMAINING)
        period = _gauge_family(RATE_LIMIT_PERIOD)
        blocked = _gauge_family(RATE_LIMITED_UNTIL)
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
        tasks = _gauge_family(ASYNCIO_TASKS)
        if self.loop is not None:
            tasks.add_metric([], float(len(asyncio.all_tasks(self.loop))))
        yield tasks


class SelfMetrics:
    """Counters the I/O shells increment, plus the state collector; rendered per scrape.

    The process's entry point (cli.main) turns prometheus_client's ``_created`` series off
    once, for the whole process: Go exporters expose none, they only double a counter's
    output."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.api_requests = _counter(API_REQUESTS, self.registry)
        self.poll_errors = _counter(POLL_ERRORS, self.registry)
        self.loop_restarts = _counter(LOOP_RESTARTS, self.registry)
        self.dropped_rows = _counter(DROPPED_ROWS, self.registry)
        self.invalid_values = _counter(INVALID_VALUES, self.registry)
        self.build_info = _gauge(BUILD_INFO, self.registry)
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.reload_successful = _gauge(RELOAD_SUCCESSFUL, self.registry)
        self.reload_success_time = _gauge(RELOAD_SUCCESS_TIME, self.registry)
        self.shard_info = _gauge(SHARD_INFO, self.registry)
        self.shards = _gauge(SHARDS, self.registry)
        self.owned_queries = _gauge(OWNED_QUERIES, self.registry)
        self.configured_queries = _gauge(CONFIGURED_QUERIES, self.registry)
        self._states: Callable[[], Iterable[QueryStatus]] = list
        # promhttp's promhttp_metric_handler_requests_in_flight, under this exporter's prefix.
        self.scrapes_in_flight = _gauge(SCRAPES_IN_FLIGHT, self.registry)
        self.scrapes_rejected = _counter(SCRAPES_REJECTED, self.registry)
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

    # -- what the I/O shells say happened (they need not know a counter's label order) -------

    def poll_failed(self, key: tuple[str, str], reason: str) -> None:
        self.poll_errors.labels(*key, reason).inc()

    def loop_restarted(self, key: tuple[str, str]) -> None:
        self.loop_restarts.labels(*key).inc()

    def rows_dropped(self, key: tuple[str, str], rows: int) -> None:
        self.dropped_rows.labels(*key).inc(rows)

    def values_left_out(self, key: tuple[str, str], values: int) -> None:
        self.invalid_values.labels(*key).inc(values)

    def scrape_rejected(self) -> None:
        self.scrapes_rejected.inc()

    def scrapes_now(self, in_flight: int) -> None:
        """Scrapes being served now (this one included)."""
        self.scrapes_in_flight.set(in_flight)

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
    return frozenset(sample_name(family) for family in SELF_FAMILIES)
