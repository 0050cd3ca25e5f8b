"""The HTTP side: landing page, /metrics, health and readiness.

/metrics writes the current data Body (already rendered and compressed by the polls) followed
by the self-metrics; nothing here calls Datadog or renders data series.
"""

from __future__ import annotations

import html
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from . import __version__
from .durations import format_duration
from .gzipjoin import Piece, inflate
from .selfmetrics import QueryState, SelfMetrics
from .sharding import Shard
from .snapshot import Body, SnapshotStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Plain scrapes inflate about this much text per worker-thread hop.
INFLATE_BATCH_BYTES = 1 << 20

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServerContext:
    """What the handlers read; the owner keeps these current."""

    store: SnapshotStore
    metrics: SelfMetrics
    states: Callable[[], list[QueryState]]
    telemetry_path: str = "/metrics"
    ready: bool = False
    reload: Callable[[], Awaitable[tuple[bool, str]]] | None = None
    shard: Shard = field(default_factory=Shard)
    configured_queries: int = 0


def accepts_gzip(header: str) -> bool:
    """True if Accept-Encoding lists gzip with a non-zero quality."""
    for token in header.split(","):
        name, _, params = token.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            quality = params.strip().removeprefix("q=").strip()
            try:
                return not quality or float(quality) > 0
            except ValueError:
                return True
    return False


def plain_text(body: Body) -> Iterator[bytes]:
    """The text of the body in order: kept text as it is, the rest inflated in batches.

    Pieces whose text is not kept (beyond the snapshot store's plain-text budget) are
    inflated about INFLATE_BATCH_BYTES at a time on the event loop, between writes: a batch
    takes about a millisecond, and a worker thread was measured slower, the loop then waiting
    for the GIL on every hand-over.
    """
    batch: list[Piece] = []
    size = 0
    for piece, text in zip(body.pieces, body.texts, strict=True):
        if text is not None:
            if batch:
                yield _inflate_batch(batch)
                batch, size = [], 0
            yield text
            continue
        batch.append(piece)
        size += piece.size
        if size >= INFLATE_BATCH_BYTES:
            yield _inflate_batch(batch)
            batch, size = [], 0
    if batch:
        yield _inflate_batch(batch)


def _inflate_batch(pieces: list[Piece]) -> bytes:
    return b"".join(inflate(piece) for piece in pieces)


def create_app(context: ServerContext, middlewares: Sequence[Middleware] = ()) -> web.Application:
    app = web.Application(middlewares=list(middlewares))

    async def metrics(request: web.Request) -> web.StreamResponse:
        body = context.store.body
        tail = context.metrics.render()
        compressed = accepts_gzip(request.headers.get("Accept-Encoding", ""))
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
        if compressed:
            parts = body.gzip_with(tail)
            response.headers["Content-Encoding"] = "gzip"
            response.content_length = sum(len(part) for part in parts)
        else:
            response.content_length = body.total.size + len(tail)
        await response.prepare(request)
        try:
            if compressed:
                for part in parts:
                    await response.write(part)
            else:
                for text in plain_text(body):
                    await response.write(text)
                await response.write(tail)
            await response.write_eof()
        except ConnectionError:
            # The scraper went away mid-body (timeout, cancelled curl): nothing to report.
            pass
        return response

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="Healthy.\n")

    async def ready(request: web.Request) -> web.Response:
        if context.ready:
            return web.Response(text="Ready.\n")
        return web.Response(status=503, text="Not ready: still starting.\n")

    async def reload(request: web.Request) -> web.Response:
        if context.reload is None:
            return web.Response(status=501, text="Reload is not available in this mode.\n")
        ok, message = await context.reload()
        return web.Response(status=200 if ok else 400, text=message + "\n")

    async def landing(request: web.Request) -> web.Response:
        return web.Response(text=landing_page(context), content_type="text/html")

    app.router.add_get("/", landing)
    app.router.add_get(context.telemetry_path, metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    return app


def landing_page(context: ServerContext) -> str:
    now = time.time()
    rows = []
    for state in context.states():
        if state.late:
            status = "late" + (" (serving last good data)" if state.serving_stale else "")
        elif state.up:
            status = "up"
        elif state.last_attempt is None:
            status = "waiting for first poll"
        else:
            status = "down" + (" (serving last good data)" if state.serving_stale else "")
        age = (
            f"{format_duration(round(now - state.last_success))} ago"
            if state.last_success is not None
            else "never"
        )
        cells = [
            state.collector,
            state.name,
            state.account,
            format_duration(state.interval),
            status,
            age,
            str(state.series),
            state.last_error or "",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    path = html.escape(context.telemetry_path)
    shard = context.shard
    sharding = (
        f"<p>Shard {shard.index} of {shard.count} (0-based): this replica polls "
        f"{len(rows)} of the {context.configured_queries} configured queries; the other "
        f"replicas poll the rest.</p>\n"
        if shard.sharded
        else ""
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Datadog CNM Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em .8em;text-align:left}}
tr:nth-child(even){{background:#f4f4f4}}</style></head>
<body><h1>Datadog CNM Exporter</h1>
<p>Version {html.escape(__version__)}. Prometheus exporter for Datadog Cloud Network Monitoring,
Case Management and RUM Audience Management.</p>
<p><a href="{path}">Metrics</a> · <a href="/-/healthy">Health</a> ·
<a href="/-/ready">Readiness</a></p>
<h2>Queries</h2>
{sharding}<table><tr><th>Collector</th><th>Query</th><th>Account</th><th>Interval</th><th>State</th>
<th>Last success</th><th>Series</th><th>Last error</th></tr>
{"".join(rows) or '<tr><td colspan="8">No queries configured.</td></tr>'}
</table></body></html>
"""
