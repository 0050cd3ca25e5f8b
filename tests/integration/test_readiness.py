"""/-/ready as docs/operations.md documents it: 503 until the configuration is loaded and
polling has started, 200 from then on, whether or not Datadog answers; /-/healthy is 200
throughout."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from exporter.app import RunOptions, build_exporter
from exporter.config.schema import parse_config
from exporter.logs import Redactor
from exporter.selfmetrics import SelfMetrics
from exporter.server import ServerParts, create_app
from exporter.snapshot import SnapshotStore
from tests.helpers import parse_metrics

from .conftest import credentials


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


@pytest.fixture
async def starting() -> AsyncIterator[tuple[ServerParts, str]]:
    """The server as the exporter builds it, before it is told that polling has started."""
    context = ServerParts(SnapshotStore(), SelfMetrics(), lambda: [])
    runner = web.AppRunner(create_app(context))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield context, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_ready_is_503_until_polling_has_started_then_200(
    starting: tuple[ServerParts, str],
) -> None:
    context, base = starting
    status, text = await get(base + "/-/ready")
    assert (status, text) == (503, "Not ready: still starting.\n")
    assert await get(base + "/-/healthy") == (200, "Healthy.\n")  # liveness is not readiness
    context.ready.set()  # what the exporter does once its polls are started
    assert await get(base + "/-/ready") == (200, "Ready.\n")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_ready_once_started_even_while_datadog_is_unreachable() -> None:
    """A Datadog outage must not make Kubernetes restart the pod."""
    redactor = Redactor()
    exporter = build_exporter(
        parse_config("datadog: {timeout: 1s}\nconnections: [{name: q, interval: 1s}]\n"),
        f"http://127.0.0.1:{closed_port()}",
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        environ={},
    )
    await exporter.start()
    base = f"http://127.0.0.1:{exporter.port}"
    failed = (
        "datadog_exporter_poll_errors_total",
        frozenset({("collector", "connections"), ("query", "q"), ("reason", "connection_refused")}),
    )
    try:
        assert await get(base + "/-/ready") == (200, "Ready.\n")
        for _ in range(100):  # the first poll comes within the start-up spread (<= 1 interval)
            _, text = await get(base + "/metrics")
            if parse_metrics(text).get(failed, 0) >= 1:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no failed poll within 10 s")
        assert await get(base + "/-/ready") == (200, "Ready.\n")
    finally:
        await exporter.stop()
