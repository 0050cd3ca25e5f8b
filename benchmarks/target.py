"""One measured exporter process: the real exporter or the reference, fed canned answers.

Run by ``benchmarks.run`` (one process per implementation and size, so their memory and CPU
do not mix). It talks JSON lines on stdout and waits for commands on stdin:

1. polls every query ``--repeats`` times with a ticker coroutine watching the event loop,
   and reports the poll-to-publish time and the largest loop stall;
2. serves /metrics (and, for the exporter, a bare aiohttp handler sending the same bytes:
   the floor) while polls keep running, until the driver says ``stop``;
3. reports its resident memory and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.reference import ReferenceExporter
from exporter.collectors.base import ApiRequest
from exporter.collectors.connections import ConnectionsJob
from exporter.config.schema import ConnectionsQuery
from exporter.datadog.client import RateLimitState
from exporter.process import pin_mmap_threshold
from exporter.scheduler import Scheduler
from exporter.selfmetrics import QueryState, SelfMetrics
from exporter.server import ServerContext, create_app
from exporter.snapshot import SnapshotStore

TICK_SECONDS = 0.002
PAUSE_BETWEEN_POLL_ROUNDS = 0.1
FLOOR_BODY = web.AppKey("floor_body", bytes)


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class StallWatch:
    """A coroutine that sleeps a tick at a time and remembers how late it woke up."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(TICK_SECONDS)
            self.worst = max(self.worst, loop.time() - before - TICK_SECONDS)

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class CannedClient:
    """Stands in for DatadogClient: every request answers with the same body at once."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.rate_limits: dict[str, RateLimitState] = {}

    def rate_limit(self, endpoint: str) -> RateLimitState:
        return self.rate_limits.setdefault(endpoint, RateLimitState())

    async def fetch(self, request: ApiRequest) -> bytes:
        return self.body

    async def close(self) -> None:
        pass


class ExporterTarget:
    """The real exporter pieces: scheduler poll path, snapshot store, /metrics app."""

    def __init__(self, body: bytes, names: list[str], group_by: list[str]) -> None:
        self.metrics = SelfMetrics()
        self.store = SnapshotStore()
        self.scheduler = Scheduler(CannedClient(body), self.store, self.metrics)  # type: ignore[arg-type]
        self.metrics.watch(self.scheduler.query_states, self.scheduler.rate_limit_views)
        for name in names:
            query = ConnectionsQuery(name=name, group_by=group_by, limit=7500)
            self._register(ConnectionsJob(query))
        self.store.set_order(self.scheduler.jobs)

    def _register(self, job: ConnectionsJob) -> None:
        key = (job.collector, job.name)
        self.scheduler.jobs[key] = job
        self.scheduler.states[key] = QueryState(
            job.collector, job.name, job.endpoint, job.interval, job.window
        )

    async def poll_round(self) -> int:
        """Poll every query once through the scheduler's own path; return the series served."""
        deadline = asyncio.get_running_loop().time() + 3600
        for key in self.scheduler.jobs:
            await self.scheduler.poll_once(key, deadline)
            if not self.scheduler.states[key].up:
                raise RuntimeError(f"poll failed: {self.scheduler.states[key].last_error}")
        return sum(state.series for state in self.scheduler.states.values())

    def apps(self) -> dict[str, web.Application]:
        context = ServerContext(self.store, self.metrics, self.scheduler.query_states, ready=True)
        # The floor: the bytes the exporter serves, joined once, handed to aiohttp as they are.
        floor = web.Application()
        floor[FLOOR_BODY] = b"".join(self.store.body.plain_with(self.metrics.render()))

        async def bare(request: web.Request) -> web.Response:
            return web.Response(body=request.app[FLOOR_BODY], content_type="text/plain")

        floor.router.add_get("/metrics", bare)
        return {"exporter": create_app(context), "floor": floor}


class ReferenceTarget:
    def __init__(self, body: bytes, names: list[str], group_by: list[str]) -> None:
        self.body = body
        self.names = names
        self.reference = ReferenceExporter(group_by)

    async def poll_round(self) -> int:
        # On the event loop, as the usual exporters do it.
        return self.reference.poll(self.names, self.body)

    def apps(self) -> dict[str, web.Application]:
        return {"exporter": self.reference.app()}


async def measure_polls(poll_round: Callable[[], Awaitable[int]], repeats: int) -> None:
    await poll_round()  # warm-up: first-use costs (imports, thread pool) are not a poll's
    watch = StallWatch()
    watch.start()
    await asyncio.sleep(TICK_SECONDS * 5)
    rounds = []
    cpu = []
    series = 0
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        series = await poll_round()
        rounds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        await asyncio.sleep(TICK_SECONDS * 5)  # let the ticker see the loop free again
    await watch.stop()
    emit("polls", seconds=rounds, cpu_seconds=cpu, series=series, stall_seconds=watch.worst)


async def serve_while_polling(target: ExporterTarget | ReferenceTarget) -> None:
    runners = []
    ports = {}
    for name, app in target.apps().items():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports[name] = runner.addresses[0][1]
        runners.append(runner)

    async def keep_polling() -> None:
        while True:
            await target.poll_round()
            await asyncio.sleep(PAUSE_BETWEEN_POLL_ROUNDS)

    poller = asyncio.create_task(keep_polling())
    emit("serving", ports=ports)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # the driver's "stop"
    poller.cancel()
    await asyncio.gather(poller, return_exceptions=True)
    for runner in runners:
        await runner.cleanup()
    runners.clear()  # and with them the floor's copy of the body, before memory is measured


async def main_async(args: argparse.Namespace, body: bytes) -> None:
    names = [f"q{index:02d}" for index in range(args.queries)]
    group_by = args.group_by.split(",")
    target: ExporterTarget | ReferenceTarget
    if args.impl == "exporter":
        target = ExporterTarget(body, names, group_by)
    else:
        target = ReferenceTarget(body, names, group_by)
    await measure_polls(target.poll_round, args.repeats)
    await serve_while_polling(target)
    gc.collect()
    emit("memory", rss_bytes=resident_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", choices=("exporter", "reference"), required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--group-by", required=True)
    parser.add_argument("--queries", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    pin_mmap_threshold()  # as the exporter's command line does, for both targets
    args = parser.parse_args()
    asyncio.run(main_async(args, Path(args.body).read_bytes()))


if __name__ == "__main__":
    main()
