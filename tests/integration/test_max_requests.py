"""--web.max-requests: /metrics requests in flight beyond the limit get 503, on a real socket.

Clients that ask for a large plain body and never read keep their requests in flight (the
body is far larger than loopback socket buffers), as a scrape storm of slow scrapers would.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager

import aiohttp
import pytest
from aiohttp import web

from exporter.collectors.connections import ConnectionsJob
from exporter.config.schema import ConnectionsQuery
from exporter.selfmetrics import SelfMetrics
from exporter.server import ServerParts, create_app
from exporter.snapshot import QuerySnapshot, SnapshotStore, prepare_snapshot
from tests.helpers import parse_metrics, render_body

ROWS = 60_000  # three families of 60,000 samples: over ten megabytes of text
Serve = Callable[[int], Awaitable[tuple[str, SelfMetrics]]]


@pytest.fixture(scope="module")
def big_snapshot() -> QuerySnapshot:
    data = [
        {
            "attributes": {
                "group_bys": {
                    "client_service": [f"client-service-{i:06d}"],
                    "server_service": [f"server-service-{i:06d}"],
                },
                "tcp_resets": i,
                "tcp_retransmits": i * 2,
                "rtt_micro_seconds": 1500 + i,
            }
        }
        for i in range(ROWS)
    ]
    job = ConnectionsJob(
        ConnectionsQuery(name="big", group_by=["client_service", "server_service"], limit=7500)
    )
    rendered = render_body(job, json.dumps({"data": data}).encode())
    snapshot = prepare_snapshot(("connections", "big"), rendered, 0.0)
    assert snapshot.size > 10_000_000
    return snapshot


@pytest.fixture
async def serve(big_snapshot: QuerySnapshot) -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(max_requests: int) -> tuple[str, SelfMetrics]:
        store = SnapshotStore()
        store.publish(big_snapshot)
        metrics = SelfMetrics()
        context = ServerParts(store, metrics, lambda: [], max_requests=max_requests)
        context.ready.set()
        runner = web.AppRunner(create_app(context))
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}", metrics

    yield start
    for runner in runners:
        await runner.cleanup()


@contextmanager
def slow_readers(base: str, count: int) -> Iterator[None]:
    """``count`` connections that ask for /metrics as plain text and never read the answer."""
    host, port = base.removeprefix("http://").split(":")
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(5)
            sock.connect((host, int(port)))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sockets.append(sock)
        yield
    finally:
        for sock in sockets:
            sock.close()


def gauge(metrics: SelfMetrics, name: str) -> float:
    return parse_metrics(metrics.render().decode())[(name, frozenset())]


async def until(condition: Callable[[], bool], what: str, within: float = 10.0) -> None:
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within}s: {what}")


async def status(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url, headers={"Accept-Encoding": "gzip"}) as response:
        return response.status, await response.read()


async def test_the_request_past_the_limit_gets_503_and_is_counted(serve: Serve) -> None:
    base, metrics = await serve(3)
    async with aiohttp.ClientSession() as session:
        with slow_readers(base, 3):
            await until(
                lambda: gauge(metrics, "datadog_exporter_scrapes_in_flight") == 3,
                "three slow scrapes in flight",
            )
            code, body = await status(session, base + "/metrics")
            assert code == 503
            assert body == b"Limit of concurrent requests reached (3), try again later.\n"
            assert gauge(metrics, "datadog_exporter_scrapes_rejected_total") == 1
            # Only the metrics path is limited.
            assert (await status(session, base + "/-/healthy"))[0] == 200
        await until(
            lambda: gauge(metrics, "datadog_exporter_scrapes_in_flight") == 0,
            "the slow scrapes' slots freed when their clients left",
        )
        code, body = await status(session, base + "/metrics")
        assert code == 200 and len(body) > 1_000_000
        assert gauge(metrics, "datadog_exporter_scrapes_rejected_total") == 1


async def test_max_requests_0_means_no_limit(serve: Serve) -> None:
    base, metrics = await serve(0)
    async with aiohttp.ClientSession() as session:
        with slow_readers(base, 5):
            await until(
                lambda: gauge(metrics, "datadog_exporter_scrapes_in_flight") == 5,
                "five slow scrapes in flight",
            )
            code, _ = await status(session, base + "/metrics")
            assert code == 200
    assert gauge(metrics, "datadog_exporter_scrapes_rejected_total") == 0
