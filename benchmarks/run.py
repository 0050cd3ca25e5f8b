"""Drive the benchmark: fetch answers from the simulator, measure each target, print a table.

For every size (rows per answer x queries) it starts one process for the exporter and one
for the reference (``benchmarks.target``), then scrapes their /metrics over loopback from
this process while they keep polling, with and without gzip. The reference is skipped above
``--reference-max-rows`` rows in total: at 10 x 7,500 rows it needs tens of seconds per
scrape, far past Prometheus' 10 s scrape timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from exporter.simulator import Simulator, SimulatorOptions

GROUP_BY = "client_service,server_service,client_availability_zone,network.server.port"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Figures:
    """What one target process measured."""

    series: int = 0
    # Fastest poll round (as timeit reports: other processes on a shared machine only ever
    # add time), wall and CPU time of all threads.
    publish_seconds: float = 0.0
    publish_cpu_seconds: float = 0.0
    stall_seconds: float = 0.0
    plain: list[float] = field(default_factory=list)
    gzip: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    plain_bytes: int = 0
    gzip_bytes: int = 0
    rss_bytes: int = 0

    @property
    def publish_us_per_sample(self) -> float:
        return self.publish_seconds / max(1, self.series) * 1e6

    @property
    def publish_cpu_us_per_sample(self) -> float:
        return self.publish_cpu_seconds / max(1, self.series) * 1e6

    @property
    def rss_per_sample(self) -> float:
        return self.rss_bytes / max(1, self.series)


async def fetch_bodies(rows: list[int], universe: int, directory: Path) -> dict[int, Path]:
    """One connections answer per row count, fetched once from the simulator."""
    simulator = Simulator(SimulatorOptions(connections_universe=universe))
    await simulator.start()
    options = simulator.options
    headers = {"DD-API-KEY": options.api_key, "DD-APPLICATION-KEY": options.app_key}
    paths = {}
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            for count in rows:
                now = int(time.time())
                params = {
                    "from": str(now - 300),
                    "to": str(now),
                    "limit": str(count),
                    "group_by": GROUP_BY,
                }
                url = simulator.url + "/api/v2/network/connections/aggregate"
                async with session.get(url, params=params) as response:
                    response.raise_for_status()
                    body = await response.read()
                got = len(json.loads(body)["data"])
                if got != count:
                    raise SystemExit(f"simulator gave {got} rows, wanted {count}: raise --universe")
                paths[count] = directory / f"connections-{count}.json"
                paths[count].write_bytes(body)
    finally:
        await simulator.stop()
    return paths


def scrape(port: int, gzip: bool) -> tuple[float, int]:
    """Seconds from sending the request to the last byte, and the bytes received."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    started = time.perf_counter()
    connection.request("GET", "/metrics", headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"/metrics answered {response.status}")
    if gzip and response.getheader("Content-Encoding") != "gzip":
        raise RuntimeError("asked for gzip and got none")
    return elapsed, len(body)


def measure(impl: str, body: Path, queries: int, repeats: int, scrapes: int) -> Figures:
    command = [
        sys.executable,
        "-m",
        "benchmarks.target",
        f"--impl={impl}",
        f"--body={body}",
        f"--group-by={GROUP_BY}",
        f"--queries={queries}",
        f"--repeats={repeats}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None and process.stdout is not None
    figures = Figures()

    def next_event(name: str) -> dict[str, Any]:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{impl} target exited before reporting {name}")
        event: dict[str, Any] = json.loads(line)
        if event["event"] != name:
            raise RuntimeError(f"expected {name}, got {event}")
        return event

    try:
        polls = next_event("polls")
        figures.series = polls["series"]
        figures.publish_seconds = min(polls["seconds"])
        figures.publish_cpu_seconds = min(polls["cpu_seconds"])
        figures.stall_seconds = polls["stall_seconds"]
        ports = next_event("serving")["ports"]
        for _ in range(scrapes):
            seconds, figures.plain_bytes = scrape(ports["exporter"], gzip=False)
            figures.plain.append(seconds)
            seconds, figures.gzip_bytes = scrape(ports["exporter"], gzip=True)
            figures.gzip.append(seconds)
            if "floor" in ports:
                figures.floor.append(scrape(ports["floor"], gzip=False)[0])
        process.stdin.write("stop\n")
        process.stdin.flush()
        figures.rss_bytes = next_event("memory")["rss_bytes"]
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return figures


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def ms(seconds: list[float]) -> str:
    if not seconds:
        return "-"
    return f"{statistics.median(seconds) * 1e3:,.0f} / {max(seconds) * 1e3:,.0f}"


def ratio(reference: float, exporter: float) -> str:
    if exporter <= 0:
        return "-"
    return f"{reference / exporter:,.1f}x"


def measures(ours: Figures, ref: Figures | None) -> list[tuple[str, str, str, str]]:
    """(measure, exporter, reference, reference / exporter) for one size."""

    def compared(
        measure: str, shown: Callable[[Figures], str], value: Callable[[Figures], float]
    ) -> tuple[str, str, str, str]:
        if ref is None:
            return (measure, shown(ours), "-", "-")
        return (measure, shown(ours), shown(ref), ratio(value(ref), value(ours)))

    def median_plain(f: Figures) -> float:
        return statistics.median(f.plain)

    def median_gzip(f: Figures) -> float:
        return statistics.median(f.gzip)

    bare = median_plain(ours) / statistics.median(ours.floor)
    return [
        compared(
            "poll-to-publish, µs/sample wall (CPU)",
            lambda f: f"{f.publish_us_per_sample:.2f} ({f.publish_cpu_us_per_sample:.2f})",
            lambda f: f.publish_us_per_sample,
        ),
        compared("/metrics plain, ms median / worst", lambda f: ms(f.plain), median_plain),
        ("bare aiohttp, same bytes, ms", ms(ours.floor), "-", f"plain / bare {bare:.2f}x"),
        compared("/metrics gzip, ms median / worst", lambda f: ms(f.gzip), median_gzip),
        compared(
            "body plain / gzip, MB",
            lambda f: f"{f.plain_bytes / 1e6:.1f} / {f.gzip_bytes / 1e6:.1f}",
            lambda f: 0.0,
        ),
        compared(
            "resident memory, bytes/sample",
            lambda f: f"{f.rss_per_sample:,.0f}",
            lambda f: f.rss_per_sample,
        ),
        compared(
            "largest event-loop stall in a poll, ms",
            lambda f: f"{f.stall_seconds * 1e3:,.1f}",
            lambda f: f.stall_seconds,
        ),
    ]


def table(results: list[tuple[int, int, Figures, Figures | None]]) -> str:
    lines = [
        "| rows x queries | samples | measure | exporter | reference | reference / exporter |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for rows, queries, ours, ref in results:
        for measure, mine, theirs, factor in measures(ours, ref):
            lines.append(
                f"| {rows:,} x {queries} | {ours.series:,} | {measure} | {mine} | {theirs} "
                f"| {factor} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--rows", default="1000,7500", help="rows per answer, comma-separated")
    parser.add_argument("--queries", default="1,10", help="queries, comma-separated")
    parser.add_argument("--repeats", type=int, default=7, help="poll rounds timed per target")
    parser.add_argument("--scrapes", type=int, default=7, help="scrapes per kind per target")
    parser.add_argument("--universe", type=int, default=20000, help="simulated connections")
    parser.add_argument(
        "--reference-max-rows",
        type=int,
        default=10000,
        help="skip the reference when rows x queries exceeds this",
    )
    args = parser.parse_args(argv)
    rows = [int(value) for value in args.rows.split(",")]
    queries = [int(value) for value in args.queries.split(",")]
    print(f"machine: {machine()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        bodies = asyncio.run(fetch_bodies(rows, args.universe, Path(directory)))
        for count in rows:
            for query_count in queries:
                print(f"measuring {count} rows x {query_count} queries ...", flush=True)
                ours = measure("exporter", bodies[count], query_count, args.repeats, args.scrapes)
                ref = None
                if count * query_count <= args.reference_max_rows:
                    ref = measure("reference", bodies[count], query_count, 3, args.scrapes)
                results.append((count, query_count, ours, ref))
    print()
    print(table(results))
