"""Requests one failed poll costs during a Datadog 503 storm, per query interval.

    python -m benchmarks.retry_storm [--polls 20] [--intervals 60,3600]
    python -m benchmarks.retry_storm --live 305

Runs the real scheduler and client against the simulator answering 503 to everything. Time
is virtual (every wait the poll asks for passes at once), so an hourly query's retries are
counted in moments. Prints, per interval, the requests per failed poll (mean and max over
``--polls`` polls with different jitter). ``--live SECONDS`` instead runs the exporter and
simulator processes for that long in real time, with one 60s query. Uses only public seams
and command lines, so the same command measures any revision: run it with the revision's
``exporter`` package first on the path (``git archive REV exporter | tar -x -C DIR``, then
``PYTHONPATH=DIR`` from DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pydantic import SecretStr

from exporter.collectors.connections import ConnectionsJob
from exporter.config.schema import ConnectionsQuery
from exporter.datadog.client import DatadogClient
from exporter.datadog.credentials import Credentials, KeySource
from exporter.logs import Redactor
from exporter.scheduler import Scheduler
from exporter.selfmetrics import SelfMetrics
from exporter.snapshot import SnapshotStore
from simulator import Fault, Simulator, SimulatorOptions


class FastForwardClock:
    """Virtual time that jumps over every wait: a sleep ends at once, the clock moved on."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def wall(self) -> float:
        return 1_700_000_000.0 + self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.elapsed += max(0.0, seconds)
        await asyncio.sleep(0)


async def requests_per_failed_poll(interval: float, polls: int, seed: int) -> list[int]:
    options = SimulatorOptions(api_key="storm-api-key-000000000000", app_key="storm-app-key-0000")
    simulator = Simulator(options)
    await simulator.start(host="127.0.0.1", port=0)
    simulator.set_fault("connections", Fault(kind="status", status=503))
    redactor = Redactor()
    keys = Credentials(
        KeySource("DD_API_KEY", SecretStr(options.api_key)),
        KeySource("DD_APP_KEY", SecretStr(options.app_key)),
        redactor,
    )
    clock = FastForwardClock()
    client = DatadogClient(
        simulator.url,
        credentials=keys,
        redactor=redactor,
        timeout=5.0,
        max_response_size=1 << 20,
        clock=clock,
    )
    scheduler = Scheduler(
        lambda _account: client,
        redactor,
        SnapshotStore(),
        SelfMetrics(),
        clock=clock,
        rng=random.Random(seed),
    )
    query = ConnectionsQuery(name="storm", group_by=["client_service"], interval=interval)
    await scheduler.add(ConnectionsJob(query))
    counts = []
    try:
        for _ in range(polls):
            before = len(simulator.requests_to("connections"))
            await scheduler.poll_once(("connections", "storm"), clock.monotonic() + interval)
            counts.append(len(simulator.requests_to("connections")) - before)
            clock.elapsed += interval
    finally:
        await scheduler.stop()
        await client.close()
        await simulator.stop()
    return counts


def live(seconds: float) -> str:
    """The real processes for ``seconds``: requests sent per failed poll of a 60s query."""
    keys = {"DD_API_KEY": "live-api-key-0000000000", "DD_APP_KEY": "live-app-key-0000000000"}
    sim_port = _free_port()
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--listen",
            f"127.0.0.1:{sim_port}",
            "--api-key",
            keys["DD_API_KEY"],
            "--app-key",
            keys["DD_APP_KEY"],
            "--fault",
            "connections:status:503",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "storm.yml"
        config.write_text(
            "connections:\n  - {name: storm, group_by: [client_service], interval: 60s}\n"
        )
        time.sleep(2)  # the simulator binds
        exporter = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                "--config.file",
                str(config),
                "--web.listen-address",
                f"127.0.0.1:{_free_port()}",
            ],
            env={**os.environ, **keys, "DD_API_URL": f"http://127.0.0.1:{sim_port}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            time.sleep(seconds)
        finally:
            exporter.terminate()
            output, _ = exporter.communicate(timeout=30)
    try:
        url = f"http://127.0.0.1:{sim_port}/_simulator/requests"
        with urllib.request.urlopen(url, timeout=10) as answer:
            log = json.load(answer)
    finally:
        simulator.terminate()
        simulator.wait(timeout=30)
    records = log if isinstance(log, list) else log.get("requests", [])
    sent = sum(1 for record in records if record.get("endpoint") == "connections")
    failed = sum(1 for line in output.splitlines() if 'msg="poll failed"' in line)
    return (
        f"live, interval 60s, {seconds:g}s: {sent} requests, {failed} failed polls finished: "
        f"{sent / max(1, failed):.1f} per failed poll (a poll still running at the end adds "
        "its requests but not its line)"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=20, help="failed polls per interval")
    parser.add_argument(
        "--intervals", default="60,3600", help="query intervals in seconds, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the retry jitter")
    parser.add_argument(
        "--live", type=float, metavar="SECONDS", help="run the real processes this long instead"
    )
    args = parser.parse_args()
    if args.live:
        print(live(args.live))
        return
    for interval in (float(text) for text in args.intervals.split(",")):
        counts = asyncio.run(requests_per_failed_poll(interval, args.polls, args.seed))
        print(
            f"interval {interval:g}s: requests per failed poll during a 503 storm: "
            f"mean {statistics.mean(counts):.1f}, max {max(counts)} "
            f"(over {len(counts)} polls)"
        )


if __name__ == "__main__":
    main()
