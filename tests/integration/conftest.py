from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from aiohttp.abc import AbstractResolver
from pydantic import SecretStr

from exporter.clock import SYSTEM_CLOCK, Clock
from exporter.datadog.client import DatadogClient
from exporter.datadog.credentials import Credentials, KeySource
from exporter.logs import Redactor, setup_logging
from exporter.scheduler import PollPolicy, Scheduler
from exporter.selfmetrics import SelfMetrics
from exporter.snapshot import SnapshotStore
from simulator import Simulator, SimulatorOptions
from tests.helpers import Samples, parse_metrics

API_KEY = "integration-api-key-1234567890abcdef"
APP_KEY = "integration-app-key-abcdef1234567890abcdef"


@pytest.fixture
def simulator_options() -> SimulatorOptions:
    """What the simulator fixture runs with; a test parametrizes this name to change it."""
    return SimulatorOptions(api_key=API_KEY, app_key=APP_KEY)


@pytest.fixture
async def simulator(simulator_options: SimulatorOptions) -> AsyncIterator[Simulator]:
    sim = Simulator(simulator_options)
    await sim.start(host="127.0.0.1", port=0)
    try:
        yield sim
    finally:
        await sim.stop()


def credentials(redactor: Redactor, api_key: str = API_KEY, app_key: str = APP_KEY) -> Credentials:
    return Credentials(
        KeySource("DD_API_KEY", SecretStr(api_key)),
        KeySource("DD_APP_KEY", SecretStr(app_key)),
        redactor,
    )


@pytest.fixture
async def client(simulator: Simulator) -> AsyncIterator[DatadogClient]:
    redactor = Redactor()
    dd = DatadogClient(
        simulator.url,
        credentials=credentials(redactor),
        redactor=redactor,
        timeout=2.0,
        max_response_size=8 * 1024 * 1024,
    )
    try:
        yield dd
    finally:
        await dd.close()


@asynccontextmanager
async def scheduler_against(
    url: str,
    *,
    request_timeout: float = 1.0,
    clock: Clock = SYSTEM_CLOCK,
    policy: PollPolicy | None = None,
    resolver: AbstractResolver | None = None,
) -> AsyncIterator[Scheduler]:
    """A scheduler polling ``url`` through a real client (resolving host names with
    ``resolver``, default the system's), self-metrics watching both; no query added,
    nothing started."""
    redactor = Redactor()
    metrics = SelfMetrics()
    client = DatadogClient(
        url,
        credentials=credentials(redactor),
        redactor=redactor,
        timeout=request_timeout,
        max_response_size=1 << 24,
        on_response=metrics.count_response,
        clock=clock,
        resolver=resolver,
    )
    scheduler = Scheduler(
        lambda _account: client, redactor, SnapshotStore(), metrics, clock=clock, policy=policy
    )
    metrics.watch(client.rate_limits.views)
    try:
        yield scheduler
    finally:
        await scheduler.stop()
        await client.close()


@pytest.fixture
async def polling(simulator: Simulator) -> AsyncIterator[Scheduler]:
    async with scheduler_against(simulator.url) as scheduler:
        yield scheduler


def served(scheduler: Scheduler) -> Samples:
    body = scheduler.store.body
    return parse_metrics(b"".join(body.plain(scheduler.metrics.render()).parts).decode())


def deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


@pytest.fixture
def debug_log() -> Iterator[tuple[io.StringIO, Redactor]]:
    """Debug logging through the real handler, as the CLI sets it up; restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    redactor = Redactor()
    setup_logging("debug", "logfmt", redactor, stream)
    try:
        yield stream, redactor
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
