"""The HTTP side: landing page, /metrics, health and readiness.

/metrics writes the current data Body (already rendered and compressed by the polls) followed
by the self-metrics: the per-query part as kept since its queries last changed, the
process-wide part rendered now. Nothing here calls Datadog, renders data series or reads a
query's state for /metrics.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from . import __version__
from .basicauth import BasicAuth, auth_middleware
from .clock import SYSTEM_CLOCK, Clock
from .config.schema import CasesQuery, Config, PolledQuery, WindowedQuery
from .datadog.pool import Route
from .durations import format_duration
from .scheduler.state import QueryState
from .selfmetrics import SelfMetrics
from .sharding import Shard
from .snapshot import SnapshotStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The paths the server keeps for itself; the metrics path (--web.telemetry-path) is another.
OWN_PATHS = ("/", "/-/healthy", "/-/ready", "/-/reload")
# Probes (kubelet, load balancers) carry no credentials; these paths reveal nothing, so they
# answer without a login when basic auth is on.
OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})
# The documentation the landing page links to (--web.docs-url changes it, e.g. to a mirror).
DOCS_URL = "https://github.com/datadog-cnm-exporter/datadog-cnm-exporter/tree/main/docs"


@dataclass(frozen=True)
class QueryDetail:
    """What a query asks Datadog, as the landing page shows it (from the configuration)."""

    window: float | None = None
    delay: float | None = None
    group_by: tuple[str, ...] = ()
    filter: str = ""


def describe_query(query: PolledQuery) -> QueryDetail:
    """A query's window, delay, group_by and filter; what a section lacks stays empty."""
    if isinstance(query, WindowedQuery):
        where = query.query or (f"tags: {', '.join(query.tags)}" if query.tags else "")
        return QueryDetail(query.window, query.delay, tuple(query.group_by), where)
    if isinstance(query, CasesQuery):
        return QueryDetail(group_by=tuple(query.group_by), filter=query.query_filter)
    entity = getattr(query, "entity", None)
    return QueryDetail(filter=f"entity: {entity}" if entity else "")


def describe_queries(config: Config) -> dict[tuple[str, str, str], QueryDetail]:
    """Every configured query's detail by (account, collector, name)."""
    return {
        (config.account_of(query), collector, query.name): describe_query(query)
        for collector, query in config.all_queries()
    }


@dataclass(frozen=True)
class Catalog:
    """What the configuration says about the queries, as the landing page shows it; the
    exporter replaces it whole on a reload."""

    configured_queries: int = 0
    # Where each account's requests go (base URL, its source, the proxy without its login).
    routes: tuple[Route, ...] = ()
    # What each query asks, by (account, collector, name).
    details: Mapping[tuple[str, str, str], QueryDetail] = field(default_factory=dict)


Reload = Callable[[], Awaitable[tuple[bool, str]]]


@dataclass(frozen=True)
class ServerParts:
    """What the server serves and how; :func:`create_app` hands each part to the handlers
    under its :class:`web.AppKey`. What changes while running has one owner elsewhere: the
    readiness event and the catalog are the exporter's, the scrapes in flight the app's."""

    store: SnapshotStore
    metrics: SelfMetrics
    states: Callable[[], list[QueryState]]
    telemetry_path: str = "/metrics"
    # Set by the owner once its polls are started, cleared when it stops: /-/ready reads it.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reload: Reload | None = None  # None: /-/reload answers 501
    shard: Shard = field(default_factory=Shard)
    # /metrics requests served at once (--web.max-requests); beyond it 503. 0: no limit.
    max_requests: int = 0
    clock: Clock = SYSTEM_CLOCK  # the ages on the landing page
    catalog: Callable[[], Catalog] = Catalog  # the current one (default: nothing configured)
    demo: bool = False  # --demo: the data shown comes from the built-in simulator
    docs_url: str = DOCS_URL


class ScrapeLimit:
    """The /metrics requests in flight against --web.max-requests (0: no limit); the one owner
    of that count, which it keeps in the self-metrics."""

    def __init__(self, limit: int, metrics: SelfMetrics):
        self.limit = limit
        self.in_flight = 0
        self._metrics = metrics

    def enter(self) -> bool:
        """Count one more scrape; False (counted as rejected) when the limit is reached."""
        if self.limit and self.in_flight >= self.limit:
            self._metrics.scrape_rejected()
            return False
        self.in_flight += 1
        self._metrics.scrapes_now(self.in_flight)
        return True

    def leave(self) -> None:
        self.in_flight -= 1
        self._metrics.scrapes_now(self.in_flight)


# What the handlers read from the application (set once, by create_app).
STORE = web.AppKey("store", SnapshotStore)
METRICS = web.AppKey("metrics", SelfMetrics)
READY = web.AppKey("ready", asyncio.Event)
RELOAD: web.AppKey[Reload | None] = web.AppKey("reload")
SCRAPES = web.AppKey("scrapes", ScrapeLimit)
PARTS = web.AppKey("parts", ServerParts)  # the landing page shows most of them


def accepts_gzip(header: str) -> bool:
    """True if Accept-Encoding (RFC 9110) prefers gzip at least as much as no coding.

    Coding names and parameter names are case-insensitive (``gzip;Q=0`` refuses gzip); a
    coding not listed takes the quality of ``*`` if that is; gzip wins ties with identity,
    since it is smaller. An entry whose quality does not parse is ignored: serving plain
    text to a client that asked for nothing clear is always safe.
    """
    quality: dict[str, float] = {}
    for entry in header.split(","):
        coding, *params = (part.strip() for part in entry.split(";"))
        coding = coding.lower()
        if not coding:
            continue
        weight: float | None = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                weight = _quality(value.strip())
        if weight is not None:
            coding = "gzip" if coding == "x-gzip" else coding
            quality[coding] = max(weight, quality.get(coding, 0.0))
    wildcard = quality.get("*")
    gzip = quality.get("gzip", wildcard or 0.0)
    identity = quality.get("identity", wildcard or 0.0)
    return gzip > 0 and gzip >= identity


def _quality(text: str) -> float | None:
    """A qvalue (``0``, ``0.5``, ``1.000``); None if it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 <= value <= 1 else None


def create_app(
    parts: ServerParts, basic_auth_users: Mapping[str, bytes] | None = None
) -> web.Application:
    """The server's routes; with ``basic_auth_users`` (user -> bcrypt hash) every path but
    OPEN_PATHS asks for a login."""
    middlewares: list[Middleware] = []
    if basic_auth_users:
        middlewares.append(auth_middleware(BasicAuth(basic_auth_users), OPEN_PATHS))
    app = web.Application(middlewares=middlewares)
    app[STORE] = parts.store
    app[METRICS] = parts.metrics
    app[READY] = parts.ready
    app[RELOAD] = parts.reload
    app[SCRAPES] = ScrapeLimit(parts.max_requests, parts.metrics)
    app[PARTS] = parts
    app.router.add_get("/", handle_landing)
    app.router.add_get(parts.telemetry_path, handle_metrics)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    app.router.add_post("/-/reload", handle_reload)
    return app


async def handle_metrics(request: web.Request) -> web.StreamResponse:
    # The limit bounds the memory scrapes hold (a gzip tail, inflated batches, socket
    # buffers of slow readers) as promhttp's MaxRequestsInFlight does: a storm of
    # scrapes is answered 503 at once instead of piling up.
    scrapes = request.app[SCRAPES]
    if not scrapes.enter():
        return web.Response(
            status=503,
            text=f"Limit of concurrent requests reached ({scrapes.limit}), try again later.\n",
        )
    try:
        return await serve_metrics(request)
    finally:
        scrapes.leave()


async def serve_metrics(request: web.Request) -> web.StreamResponse:
    body = request.app[STORE].body
    tail = request.app[METRICS].for_scrape()
    # Several Accept-Encoding headers are one comma-separated list (RFC 9110).
    compressed = accepts_gzip(",".join(request.headers.getall("Accept-Encoding", ())))
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
    if compressed:
        payload = body.gzip(tail.process, tail.per_query)
        response.headers["Content-Encoding"] = "gzip"
    else:
        payload = body.plain(tail.process, tail.per_query)
    response.content_length = payload.size
    await response.prepare(request)
    try:
        for part in payload.parts:
            await response.write(part)
        await response.write_eof()
    except ConnectionError:
        # The scraper went away mid-body (timeout, cancelled curl): nothing to report.
        pass
    return response


async def handle_healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def handle_ready(request: web.Request) -> web.Response:
    if request.app[READY].is_set():
        return web.Response(text="Ready.\n")
    return web.Response(status=503, text="Not ready: still starting.\n")


async def handle_reload(request: web.Request) -> web.Response:
    run = request.app[RELOAD]
    if run is None:
        return web.Response(status=501, text="Reload is not available in this mode.\n")
    ok, message = await run()
    return web.Response(status=200 if ok else 400, text=message + "\n")


async def handle_landing(request: web.Request) -> web.Response:
    return web.Response(text=landing_page(request.app[PARTS]), content_type="text/html")


# What to check when a query succeeds but carries nothing.
EMPTY_HINT = (
    "the answer matched nothing: check the query's filters (tags, query, query_filter), "
    "the tag names and values, and group_by"
)
UNRESOLVED_HINT = "N/A or absent in every row; most often a field Datadog does not know"


def answer_status(state: QueryState) -> str:
    """An up query's state: plain "up" only when its last answer carried rows whose
    group_by fields all resolved; "up, 0 rows" and unresolved fields say what to check."""
    if state.rows == 0:
        return f"up, 0 rows ({EMPTY_HINT})" if state.empty_answer_is_news else "up, 0 rows"
    unresolved = state.unresolved_fields
    if unresolved:
        return f"up, group_by unresolved: {', '.join(unresolved)} ({UNRESOLVED_HINT})"
    return "up"


def landing_page(parts: ServerParts) -> str:
    now = parts.clock.monotonic()  # ages only: a wall-clock step changes none
    catalog = parts.catalog()
    rows = []
    for state in parts.states():
        if state.late:
            status = "late" + (" (serving last good data)" if state.serving_stale else "")
        elif state.up:
            status = answer_status(state)
        elif state.last_attempt is None:
            status = "waiting for first poll"
        else:
            status = "down" + (" (serving last good data)" if state.serving_stale else "")
        age = (
            f"{format_duration(round(now - state.last_success_monotonic))} ago"
            if state.last_success_monotonic is not None
            else "never"
        )
        cells = [
            state.collector,
            state.name,
            state.account,
            format_duration(state.interval),
            *detail_cells(catalog.details.get((state.account, state.collector, state.name))),
            status,
            age,
            str(state.series),
            state.last_error or "",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    path = html.escape(parts.telemetry_path)
    shard = parts.shard
    sharding = (
        f"<p>Shard {shard.index} of {shard.count} (0-based): this replica polls "
        f"{len(rows)} of the {catalog.configured_queries} configured queries; the other "
        f"replicas poll the rest.</p>\n"
        if shard.sharded
        else ""
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Datadog CNM Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}
tr:nth-child(even){{background:#f4f4f4}}
.demo{{background:#fff3cd;border:1px solid #e0b000;padding:.5em}}</style></head>
<body><h1>Datadog CNM Exporter</h1>
{demo_banner(parts.demo)}<p>Version {html.escape(__version__)}. Prometheus exporter for Datadog
Cloud Network Monitoring, Case Management and RUM Audience Management.</p>
<p><a href="{path}">Metrics</a> · <a href="/-/healthy">Health</a> ·
<a href="/-/ready">Readiness</a> · <a href="{html.escape(parts.docs_url)}">Documentation</a></p>
{routes_section(catalog.routes)}<h2>Queries</h2>
{sharding}<table><tr><th>Collector</th><th>Query</th><th>Account</th><th>Interval</th>
{DETAIL_HEADERS}<th>State</th><th>Last success</th><th>Series</th><th>Last error</th></tr>
{"".join(rows) or '<tr><td colspan="12">No queries configured.</td></tr>'}
</table></body></html>
"""


# The landing page's parts of issue 16 ("where requests go", demo data, what a query asks),
# kept apart from the query states above.
DETAIL_HEADERS = "<th>Window</th><th>Delay</th><th>Group by</th><th>Filter</th>"


def detail_cells(detail: QueryDetail | None) -> list[str]:
    """The window, delay, group_by and filter cells of one query (empty where it has none)."""
    if detail is None:
        return ["", "", "", ""]
    return [
        format_duration(detail.window) if detail.window is not None else "",
        format_duration(detail.delay) if detail.delay is not None else "",
        ", ".join(detail.group_by),
        detail.filter,
    ]


def demo_banner(demo: bool) -> str:
    """Under --demo, a line no one can miss: these numbers are the simulator's, not Datadog's."""
    if not demo:
        return ""
    return (
        '<p class="demo"><strong>Demo data</strong>: this exporter runs with --demo against '
        "its built-in Datadog simulator. No number here comes from Datadog.</p>\n"
    )


def routes_section(routes: Sequence[Route]) -> str:
    """Where requests go: each account's base URL, the setting that chose it, the proxy."""
    if not routes:
        return ""
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(cell)}</td>"
            for cell in (route.account, route.url, route.source, route.proxy)
        )
        + "</tr>"
        for route in routes
    )
    return (
        "<h2>Datadog API</h2>\n<table><tr><th>Account</th><th>Base URL</th><th>Set by</th>"
        f"<th>Proxy</th></tr>\n{rows}\n</table>\n"
    )
