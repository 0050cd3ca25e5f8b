"""One measured exporter process: the real exporter or the reference, fed canned answers.

Run by ``benchmarks.run`` (one process per implementation and size, so their memory and CPU
do not mix). It talks JSON lines on stdout and waits for commands on stdin:

1. polls every query ``--repeats`` times with a ticker coroutine watching the event loop,
   and reports the poll-to-publish time and the largest loop stall. With ``--burst`` every
   query of a round is due at once (as at start-up): the first round starts from an empty
   store, and each query's time from its API call returning to its data being served is
   reported, with the CPU time of every publish;
2. serves /metrics (and, for the exporter, a bare aiohttp handler sending the bytes the
   exporter served, plain or gzip: the floor) while polls keep running (round after round;
   with ``--burst`` one query after the other at the pace of a one-minute interval each),
   until the driver says ``stop``;
3. reports its resident memory and exits.

It uses only what the exporter's scheduler, snapshot store and server offer to their own
callers (constructors, ``Scheduler.add``, ``poll_once``, ``state``), so the driver can run it
against another checkout of ``exporter`` with that API (``--compare``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import exporter
from benchmarks.reference import ReferenceExporter
from exporter.collectors.connections import ConnectionsJob
from exporter.collectors.protocol import ApiRequest
from exporter.config.schema import ConnectionsQuery
from exporter.datadog.ratelimit import RateLimits
from exporter.logs import Redactor
from exporter.process import pin_mmap_threshold
from exporter.scheduler import Scheduler
from exporter.selfmetrics import SelfMetrics
from exporter.server import ServerParts, create_app
from exporter.snapshot import QuerySnapshot, SnapshotStore

TICK_SECONDS = 0.002
PAUSE_BETWEEN_POLL_ROUNDS = 0.1
# While the many-small-queries target serves, it polls its queries in turn at the pace of an
# interval of one minute each (the default interval), not in bursts.
STEADY_INTERVAL_SECONDS = 60.0


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
    """Stands in for DatadogClient (a scheduler Client): every request answers with the same
    body at once.

    It notes when each query's call returned, by the query's tag (each query has its own).
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.redactor = Redactor()
        self.rate_limits = RateLimits()
        self.answered_at: dict[str, float] = {}

    async def fetch(self, request: ApiRequest) -> bytes:
        self.answered_at[request.params["tags"]] = time.perf_counter()
        return self.body

    async def close(self) -> None:
        pass


class TimedStore(SnapshotStore):
    """The snapshot store, noting the CPU time of each publish and when each query's data
    became what scrapes read (publish returns after swapping the body in)."""

    def __init__(self) -> None:
        super().__init__()
        self.publish_cpu: list[float] = []
        self.published_at: dict[tuple[str, str], float] = {}

    def publish(self, snapshot: QuerySnapshot) -> None:
        started = time.thread_time()
        super().publish(snapshot)
        self.publish_cpu.append(time.thread_time() - started)
        self.published_at[snapshot.key] = time.perf_counter()


def tag_of(name: str) -> str:
    return f"bench:{name}"


class ExporterTarget:
    """The real exporter pieces: scheduler poll path, snapshot store, /metrics app."""

    def __init__(self, body: bytes, names: list[str], group_by: list[str], burst: bool) -> None:
        self.metrics = SelfMetrics()
        self.store = TimedStore()
        self.client = CannedClient(body)
        self.scheduler = Scheduler(
            lambda _account: self.client, self.client.redactor, self.store, self.metrics
        )
        watch: Any = self.metrics.watch
        if len(inspect.signature(watch).parameters) == 2:
            # A --compare checkout from before the per-query self-metrics were kept rendered:
            # its SelfMetrics read the states at each scrape.
            watch(self.scheduler.query_states, self.client.rate_limits.views)
        else:
            self.metrics.watch(self.client.rate_limits.views)
        self.burst = burst
        self.floor_bodies: dict[str, bytes] = {}  # filled by copy_floor
        self.jobs = [
            ConnectionsJob(
                ConnectionsQuery(
                    name=name, group_by=group_by, tags=[tag_of(name)], limit=7500, interval=3600
                )
            )
            for name in names
        ]

    async def prepare(self) -> None:
        """The queries taken on, not started: the rounds poll them."""
        await self.scheduler.add(*self.jobs)

    async def poll_round(self) -> int:
        """Poll every query once through the scheduler's own path; return the series served.

        In turn, or with ``burst`` all at once (each still publishes on its own).
        """
        deadline = self.scheduler.clock.monotonic() + 3600
        if self.burst:
            await asyncio.gather(*(self.scheduler.poll_once(key, deadline) for key in self.keys))
        else:
            for key in self.keys:
                await self.scheduler.poll_once(key, deadline)
        for key in self.keys:
            state = self.scheduler.state(key)
            if not state.up:
                raise RuntimeError(f"poll failed: {state.last_error}")
        return sum(state.series for state in self.scheduler.query_states())

    async def poll_steadily(self) -> None:
        """Forever: one query after the other, each once per STEADY_INTERVAL_SECONDS."""
        deadline = self.scheduler.clock.monotonic() + 3600
        while True:
            for key in self.keys:
                await self.scheduler.poll_once(key, deadline)
                await asyncio.sleep(STEADY_INTERVAL_SECONDS / len(self.keys))

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [(job.collector, job.name) for job in self.jobs]

    def on_metrics_after_call(self) -> list[float]:
        """Per query: seconds from its last API call returning to its data being served."""
        return [
            self.store.published_at[key] - self.client.answered_at[tag_of(key[1])]
            for key in self.keys
        ]

    def apps(self) -> dict[str, web.Application]:
        context = ServerParts(self.store, self.metrics, self.scheduler.query_states)
        context.ready.set()
        return {"exporter": create_app(context), "floor": floor_app(self.floor_bodies)}

    async def copy_floor(self, port: int) -> None:
        """Fetch what the exporter serves, plain and gzip, for the bare handler to send."""
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            for encoding in ("identity", "gzip"):
                url = f"http://127.0.0.1:{port}/metrics"
                async with session.get(url, headers={"Accept-Encoding": encoding}) as response:
                    self.floor_bodies[encoding] = await response.read()


def floor_app(bodies: dict[str, bytes]) -> web.Application:
    """The floor: bytes joined once, handed to aiohttp as they are."""

    async def bare(request: web.Request) -> web.Response:
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(
                body=bodies["gzip"],
                content_type="text/plain",
                headers={"Content-Encoding": "gzip"},
            )
        return web.Response(body=bodies["identity"], content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", bare)
    return app


class ReferenceTarget:
    def __init__(self, body: bytes, names: list[str], group_by: list[str]) -> None:
        self.body = body
        self.names = names
        self.reference = ReferenceExporter(group_by)

    async def prepare(self) -> None:
        pass

    async def poll_round(self) -> int:
        # On the event loop, as the usual exporters do it.
        return self.reference.poll(self.names, self.body)

    def apps(self) -> dict[str, web.Application]:
        return {"exporter": self.reference.app()}


async def measure_polls(
    poll_round: Callable[[], Awaitable[int]], repeats: int, target: ExporterTarget | None
) -> None:
    burst = target is not None and target.burst
    if not burst:
        await poll_round()  # warm-up: first-use costs (imports, thread pool) are not a poll's
    watch = StallWatch()
    watch.start()
    await asyncio.sleep(TICK_SECONDS * 5)
    rounds = []
    cpu = []
    after_call: list[float] = []
    series = 0
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        series = await poll_round()
        rounds.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        if burst and target is not None:
            after_call += target.on_metrics_after_call()
        await asyncio.sleep(TICK_SECONDS * 5)  # let the ticker see the loop free again
    await watch.stop()
    fields: dict[str, Any] = {}
    if burst and target is not None:
        fields = {"after_call": after_call, "publish_cpu": target.store.publish_cpu}
    emit(
        "polls", seconds=rounds, cpu_seconds=cpu, series=series, stall_seconds=watch.worst, **fields
    )


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
    if isinstance(target, ExporterTarget):
        await target.copy_floor(ports["exporter"])

    async def keep_polling() -> None:
        if isinstance(target, ExporterTarget) and target.burst:
            await target.poll_steadily()
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
    runners.clear()
    if isinstance(target, ExporterTarget):
        target.floor_bodies.clear()  # the floor's copy of the body goes before memory is measured


async def main_async(args: argparse.Namespace, body: bytes) -> None:
    width = len(str(args.queries - 1))
    names = [f"q{index:0{max(2, width)}d}" for index in range(args.queries)]
    group_by = args.group_by.split(",")
    target: ExporterTarget | ReferenceTarget
    if args.impl == "exporter":
        target = ExporterTarget(body, names, group_by, burst=args.burst)
        await target.prepare()
        await measure_polls(target.poll_round, args.repeats, target)
    else:
        target = ReferenceTarget(body, names, group_by)
        await measure_polls(target.poll_round, args.repeats, None)
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
    parser.add_argument("--burst", action="store_true", help="all queries of a round at once")
    parser.add_argument("--cpus", default="", help="run on these CPUs only, e.g. 0 or 0,1")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
    pin_mmap_threshold()  # as the exporter's command line does, for both targets
    emit("started", exporter=str(Path(exporter.__file__).parent))
    asyncio.run(main_async(args, Path(args.body).read_bytes()))


if __name__ == "__main__":
    main()
