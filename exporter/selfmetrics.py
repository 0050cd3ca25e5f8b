"""The exporter's own metrics: per query, kept rendered; process-wide, rendered per scrape.

Per-query families (the scheduler's state of each query and its counters: one sample per
query each, thousands with thousands of queries) are rendered when that query changes — the
scheduler says so at the end of a poll, on a failure and on each transition the clock alone
decides (late, stale) — and kept as text and compressed blocks (:class:`QueryLines`), so a
scrape copies them and reads no query's state: a scrape costs no more as queries are added. A
query's samples exist from :meth:`SelfMetrics.show_query` to :meth:`SelfMetrics.forget_query`.

The process-wide families (requests per endpoint, rate limits, build, process, scrapes) are a
fixed few dozen series, so prometheus_client's usual machinery renders them per scrape (the
data series are rendered elsewhere, as text). This module reads query and rate-limit state
through the shapes it declares (:class:`QueryStatus`, :class:`RateLimitView`) and imports
neither owner.
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
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
from .gzipjoin import NO_TEXT, Compressed, Piece, compress_piece


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
# they are rendered as text here, when a query changes (prometheus_client formats each sample
# in Python at every scrape, which would make every scrape cost more per query).
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
    "Rows (connections, DNS rows, case groups, audience connections, health insights) in "
    "the query's last successful Datadog answer, counted before max_series drops any. 0: "
    "the query succeeds but matches nothing (check its filters, tags and group_by); up "
    "stays 1. No sample before the first successful poll.",
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

# The other families: declared here once, each object below is made from its declaration, so
# the metrics reference (python -m exporter.docs) reads what is served. The per-query
# counters among them are kept and rendered here with the query's state; the rest by
# prometheus_client.
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
# The per-query counters, kept as numbers per query and rendered with its state.
QUERY_COUNTER_FAMILIES = (POLL_ERRORS, LOOP_RESTARTS, DROPPED_ROWS, INVALID_VALUES)
# Every family with one sample (or a few) per query, in the order /metrics serves them.
PER_QUERY_FAMILIES = (*QUERY_FAMILIES, *QUERY_COUNTER_FAMILIES)
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


@dataclass
class QueryCounts:
    """One query's counters: running totals since it was shown."""

    poll_errors: dict[str, float] = field(default_factory=dict)  # by reason
    loop_restarts: float = 0.0
    dropped_rows: float = 0.0
    invalid_values: float = 0.0


_POLL_ERRORS = sample_name(POLL_ERRORS)
_LOOP_RESTARTS = sample_name(LOOP_RESTARTS)
_DROPPED_ROWS = sample_name(DROPPED_ROWS)
_INVALID_VALUES = sample_name(INVALID_VALUES)


def render_query(state: QueryStatus, counts: QueryCounts) -> tuple[bytes, ...]:
    """One query's sample lines of each of PER_QUERY_FAMILIES, in that order (``b""`` for a
    family it has no sample of yet). Pure: the same state and counts give the same bytes."""
    labels = (
        f'{{collector="{escape_label_value(state.collector)}",'
        f'query="{escape_label_value(state.name)}"}} '
    )
    more = labels[:-2]  # the same labels, open for one more
    texts = (
        f"{UP.name}{labels}{1 if state.up else 0}\n",
        ""
        if state.last_success is None
        else f"{LAST_SUCCESS.name}{labels}{format_value(state.last_success)}\n",
        ""
        if state.last_duration is None
        else f"{DURATION.name}{labels}{format_value(state.last_duration)}\n",
        f"{SERIES.name}{labels}{state.series}\n",
        "" if state.window is None else f"{WINDOW.name}{labels}{format_value(state.window)}\n",
        f"{INTERVAL.name}{labels}{format_value(state.interval)}\n",
        f"{STALE.name}{labels}{1 if state.serving_stale else 0}\n",
        "" if state.rows is None else f"{ANSWER_ROWS.name}{labels}{state.rows}\n",
        "".join(
            f'{GROUP_BY_UNRESOLVED.name}{more},field="{escape_label_value(name)}"}} '
            f"{1 if unresolved else 0}\n"
            for name, unresolved in state.group_by_unresolved
        ),
        "".join(
            f'{_POLL_ERRORS}{more},reason="{escape_label_value(reason)}"}} {format_value(count)}\n'
            for reason, count in counts.poll_errors.items()
        ),
        f"{_LOOP_RESTARTS}{labels}{format_value(counts.loop_restarts)}\n",
        f"{_DROPPED_ROWS}{labels}{format_value(counts.dropped_rows)}\n",
        f"{_INVALID_VALUES}{labels}{format_value(counts.invalid_values)}\n",
    )
    return tuple(text.encode() for text in texts)


def family_header(family: Family) -> bytes:
    """HELP and TYPE as prometheus_client writes them: a counter's under its sample name."""
    return Family(sample_name(family), family.help, family.type).header()


# Queries per block: a change recompresses one block of this many queries' lines per family
# it changed (tens of microseconds, mostly the compressor's set-up), and a scrape joins
# queries / BLOCK_QUERIES pieces per family. Compressed together, 64 lines shrink about 20x.
BLOCK_QUERIES = 64


class QueryLines:
    """Every shown query's lines of some families, kept as text and compressed between
    scrapes; a family's lines are served under its header even when no query has any.

    Per family, queries sit in slots (in the order first put) grouped in blocks of
    ``block_queries``; each block is kept as its text and its compressed piece. :meth:`put`
    and :meth:`remove` change one query's lines and mark, per family whose lines changed, that
    one block; :meth:`settle` recompresses the marked blocks, each once however many of its
    queries changed. So a change settled at once costs O(families + changed families x
    block_queries lines), whatever the number of queries, and N queries put before one
    settle (start-up, a reload) cost N / block_queries compressions per family, not N.
    :meth:`view` settles, then joins the blocks if anything changed since its last call: one
    reference and at most one CRC-32 combine per block (families x queries / block_queries),
    no formatting; when nothing changed it is the same object again.

    A removed query leaves an empty slot; once half the slots are empty, they are closed up
    (every block marked: O(all lines) at the next settle, after at least as many removals
    as queries remain).
    """

    def __init__(self, families: Sequence[Family], block_queries: int = BLOCK_QUERIES) -> None:
        if block_queries < 1:
            raise ValueError("block_queries must be positive")
        self._block = block_queries
        self._headers = tuple(
            (header, compress_piece(header)) for header in map(family_header, families)
        )
        self._slots: dict[tuple[str, str], int] = {}
        self._keys: list[tuple[str, str] | None] = []  # by slot; None: an empty slot
        self._lines: list[list[bytes]] = [[] for _ in families]  # per family, by slot
        self._blocks: list[list[tuple[bytes, Piece]]] = [[] for _ in families]
        self._marked: set[tuple[int, int]] = set()  # (family, block) to compress again
        self._view: Compressed | None = None

    def __len__(self) -> int:
        return len(self._slots)

    def put(self, key: tuple[str, str], lines: Sequence[bytes]) -> None:
        """Serve ``lines`` (one entry per family, in order) as ``key``'s from now on."""
        if len(lines) != len(self._lines):
            raise ValueError(f"{key}: {len(lines)} families of lines, not {len(self._lines)}")
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = len(self._keys)
            self._keys.append(key)
            for family_lines in self._lines:
                family_lines.append(b"")
            if slot % self._block == 0:
                for blocks in self._blocks:
                    blocks.append((b"", NO_TEXT))
        for family, text in enumerate(lines):
            if self._lines[family][slot] != text:
                self._lines[family][slot] = text
                self._mark(family, slot // self._block)

    def remove(self, key: tuple[str, str]) -> None:
        """Serve nothing of ``key`` from now on."""
        slot = self._slots.pop(key, None)
        if slot is None:
            return
        self._keys[slot] = None
        for family, family_lines in enumerate(self._lines):
            if family_lines[slot]:
                family_lines[slot] = b""
                self._mark(family, slot // self._block)
        if 2 * len(self._slots) < len(self._keys):
            self._close_up()

    def _close_up(self) -> None:
        """Take the empty slots out, keeping the order, and rebuild every block."""
        kept = [
            (key, [family_lines[slot] for family_lines in self._lines])
            for slot, key in enumerate(self._keys)
            if key is not None
        ]
        self._keys = [key for key, _ in kept]
        self._slots = {key: slot for slot, (key, _) in enumerate(kept)}
        self._lines = [[lines[family] for _, lines in kept] for family in range(len(self._lines))]
        blocks = -(-len(kept) // self._block)
        self._blocks = [[(b"", NO_TEXT)] * blocks for _ in self._lines]
        self._marked = {
            (family, block) for family in range(len(self._lines)) for block in range(blocks)
        }
        self._view = None

    def _mark(self, family: int, block: int) -> None:
        self._marked.add((family, block))
        self._view = None

    def settle(self) -> None:
        """Compress the blocks changed since the last settle, each once."""
        for family, block in self._marked:
            start = block * self._block
            text = b"".join(self._lines[family][start : start + self._block])
            self._blocks[family][block] = (text, compress_piece(text) if text else NO_TEXT)
        self._marked.clear()

    def view(self) -> Compressed:
        """Every family's header and lines, as text and as compressed pieces."""
        self.settle()
        if self._view is None:
            self._view = Compressed.of(self._parts())
        return self._view

    def _parts(self) -> Iterator[tuple[bytes, Piece]]:
        for header, blocks in zip(self._headers, self._blocks, strict=True):
            yield header
            yield from blocks


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


@dataclass(frozen=True, slots=True)
class ScrapeTail:
    """What a scrape serves of the self-metrics, after the data series."""

    per_query: Compressed  # rendered and compressed when queries changed; copied as it is
    process: bytes  # the process-wide families, rendered for this scrape


class SelfMetrics:
    """The per-query families (kept rendered) and the process-wide ones (rendered per scrape).

    The I/O shells say what happened through verbs (``poll_failed``, ``query_changed``...),
    never through a counter's label order. The process's entry point (cli.main) turns
    prometheus_client's ``_created`` series off once, for the whole process: Go exporters
    expose none, they only double a counter's output."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.api_requests = _counter(API_REQUESTS, self.registry)
        self.build_info = _gauge(BUILD_INFO, self.registry)
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.reload_successful = _gauge(RELOAD_SUCCESSFUL, self.registry)
        self.reload_success_time = _gauge(RELOAD_SUCCESS_TIME, self.registry)
        self.shard_info = _gauge(SHARD_INFO, self.registry)
        self.shards = _gauge(SHARDS, self.registry)
        self.owned_queries = _gauge(OWNED_QUERIES, self.registry)
        self.configured_queries = _gauge(CONFIGURED_QUERIES, self.registry)
        # promhttp's promhttp_metric_handler_requests_in_flight, under this exporter's prefix.
        self.scrapes_in_flight = _gauge(SCRAPES_IN_FLIGHT, self.registry)
        self.scrapes_rejected = _counter(SCRAPES_REJECTED, self.registry)
        ProcessCollector(registry=self.registry)
        self._loop_collector = _LoopCollector()
        self.registry.register(self._loop_collector)
        # Each shown query's state (read when it changes, never at a scrape) and counters.
        self._queries: dict[tuple[str, str], tuple[QueryStatus, QueryCounts]] = {}
        self._query_lines = QueryLines(PER_QUERY_FAMILIES)

    def watch_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Report the event loop's task count (a leak shows as a count that keeps growing)."""
        self._loop_collector.loop = loop

    def watch(self, rate_limits: Callable[[], Iterable[RateLimitView]]) -> None:
        """Register the per-endpoint rate-limit reader (once, at start-up; read per scrape)."""
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

    # -- a query's life: shown, changed, forgotten -------------------------------------------

    def show_query(self, state: QueryStatus) -> None:
        """Serve a new query's samples from now on, its loss counters at 0, so Prometheus'
        increase() sees the first dropped row, invalid value or loop restart (a series born
        at 1 shows no increase). ``state`` is read again at each :meth:`query_changed`.

        Its lines are compressed with the next change or scrape: the queries of a start-up
        or reload, shown one after the other, cost one compression per block, not each."""
        key = (state.collector, state.name)
        known = self._queries.get(key)
        self._queries[key] = (state, known[1] if known is not None else QueryCounts())
        self._query_lines.put(key, render_query(*self._queries[key]))

    def query_changed(self, key: tuple[str, str]) -> None:
        """The query's state changed (a poll ended, the clock made it late or stale): render
        its samples again and compress them now, so the scrapes after copy them. Nothing is
        served of a query not shown, or forgotten."""
        known = self._queries.get(key)
        if known is not None:
            self._query_lines.put(key, render_query(*known))
            self._query_lines.settle()

    def forget_query(self, key: tuple[str, str]) -> None:
        """A removed query: its samples vanish from /metrics, counters and all (its blocks
        are compressed again with the next change or scrape)."""
        self._queries.pop(key, None)
        self._query_lines.remove(key)

    # -- what the I/O shells say happened (they need not know a counter's label order) -------

    def _counts(self, key: tuple[str, str]) -> QueryCounts | None:
        """A shown query's counters; None for one gone (a reload) while its poll ended: what
        happens to it then counts nothing."""
        known = self._queries.get(key)
        return None if known is None else known[1]

    def poll_failed(self, key: tuple[str, str], reason: str) -> None:
        if (counts := self._counts(key)) is not None:
            counts.poll_errors[reason] = counts.poll_errors.get(reason, 0.0) + 1
            self.query_changed(key)

    def loop_restarted(self, key: tuple[str, str]) -> None:
        if (counts := self._counts(key)) is not None:
            counts.loop_restarts += 1
            self.query_changed(key)

    def rows_dropped(self, key: tuple[str, str], rows: int) -> None:
        if (counts := self._counts(key)) is not None:
            counts.dropped_rows += rows
            self.query_changed(key)

    def values_left_out(self, key: tuple[str, str], values: int) -> None:
        if (counts := self._counts(key)) is not None:
            counts.invalid_values += values
            self.query_changed(key)

    def scrape_rejected(self) -> None:
        self.scrapes_rejected.inc()

    def scrapes_now(self, in_flight: int) -> None:
        """Scrapes being served now (this one included)."""
        self.scrapes_in_flight.set(in_flight)

    # -- what scrapes serve --------------------------------------------------------------------

    def for_scrape(self) -> ScrapeTail:
        """The per-query part as kept (reading no query's state; compressing only blocks of
        queries shown or forgotten since the last change) and the process-wide part rendered
        now: neither costs more as queries are added, apart from copying bytes."""
        return ScrapeTail(self._query_lines.view(), generate_latest(self.registry))

    def render(self) -> bytes:
        """All the self-metrics as one text (what a plain scrape serves after the data)."""
        tail = self.for_scrape()
        return b"".join(tail.per_query.texts) + tail.process


def self_metric_names() -> frozenset[str]:
    """Every self-metric name as it appears on /metrics (counters with ``_total``)."""
    return frozenset(sample_name(family) for family in SELF_FAMILIES)
