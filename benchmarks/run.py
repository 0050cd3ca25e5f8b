"""Drive the benchmark: fetch answers from the simulator, measure each target, print a table.

For every size (rows per answer x queries) it starts one process for the exporter and one
for the reference (``benchmarks.target``), then scrapes their /metrics over loopback from
this process while they keep polling, with and without gzip. The reference is skipped above
``--reference-max-rows`` rows in total: at 10 x 7,500 rows it needs tens of seconds per
scrape, far past Prometheus' 10 s scrape timeout.

One more row, "many small queries" (``--many``), has every query of a round due at once,
as at start-up, and measures how long each takes from its API call to /metrics and the CPU
time of each publish.

``--compare NAME=PATH`` measures another checkout's ``exporter`` package (PATH is the
checkout's root) in the same run, in a column of its own beside this one's, with the same
answers and the same benchmark code: before/after figures from one run of a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import json
import os
import platform
import re
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
from prometheus_client import disable_created_metrics

from simulator import Simulator, SimulatorOptions

GROUP_BY = "client_service,server_service,client_availability_zone,network.server.port"
ROOT = Path(__file__).resolve().parent.parent
THIS_TREE = "exporter"


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
    floor_gzip: list[float] = field(default_factory=list)
    plain_bytes: int = 0
    gzip_bytes: int = 0
    rss_bytes: int = 0
    # Burst rounds only (all queries due at once).
    queries: int = 0
    startup_seconds: float = 0.0  # the first round, from an empty store
    startup_cpu_seconds: float = 0.0
    after_call: list[float] = field(default_factory=list)
    publish_cpu: list[float] = field(default_factory=list)
    queries_served: int = 0

    @property
    def publish_us_per_sample(self) -> float:
        return self.publish_seconds / max(1, self.series) * 1e6

    @property
    def publish_cpu_us_per_sample(self) -> float:
        return self.publish_cpu_seconds / max(1, self.series) * 1e6

    @property
    def rss_per_sample(self) -> float:
        return self.rss_bytes / max(1, self.series)


@dataclass(frozen=True)
class Size:
    rows: int
    queries: int
    burst: bool = False

    @property
    def label(self) -> str:
        label = f"{self.rows:,} x {self.queries:,}"
        return label + " (many small queries, all due at once)" if self.burst else label


async def fetch_bodies(rows: set[int], universe: int, directory: Path) -> dict[int, Path]:
    """One connections answer per row count, fetched once from the simulator."""
    simulator = Simulator(SimulatorOptions(connections_universe=universe))
    await simulator.start()
    options = simulator.options
    headers = {"DD-API-KEY": options.api_key, "DD-APPLICATION-KEY": options.app_key}
    paths = {}
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            for count in sorted(rows):
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


def scrape(port: int, gzip: bool) -> tuple[float, bytes]:
    """Seconds from sending the request to the last byte, and the bytes received."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
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
    return elapsed, body


def tree_directory(name: str, checkout: Path, scratch: Path) -> Path:
    """Where to start a target so that ``exporter`` comes from ``checkout``: a directory of
    links to this tree's benchmarks and that checkout's exporter package."""
    if name == THIS_TREE:
        return ROOT
    directory = scratch / f"tree-{name}"
    directory.mkdir()
    (directory / "benchmarks").symlink_to(ROOT / "benchmarks")
    (directory / "exporter").symlink_to(checkout.resolve() / "exporter")
    return directory


def measure(
    impl: str, tree: Path, body: Path, size: Size, *, repeats: int, scrapes: int, cpus: str
) -> Figures:
    command = [
        sys.executable,
        "-m",
        "benchmarks.target",
        f"--impl={impl}",
        f"--body={body}",
        f"--group-by={GROUP_BY}",
        f"--queries={size.queries}",
        f"--repeats={repeats}",
        f"--cpus={cpus}",
    ]
    if size.burst:
        command.append("--burst")
    # -m puts the working directory first on sys.path, ahead of an editable install.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    process = subprocess.Popen(
        command, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
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
        started = next_event("started")
        expected = tree.resolve() / "exporter"
        if impl == "exporter" and Path(started["exporter"]).resolve() != expected.resolve():
            raise RuntimeError(f"target imported {started['exporter']}, wanted {expected}")
        polls = next_event("polls")
        figures.series = polls["series"]
        figures.publish_seconds = min(polls["seconds"])
        figures.publish_cpu_seconds = min(polls["cpu_seconds"])
        figures.stall_seconds = polls["stall_seconds"]
        if size.burst:
            figures.queries = size.queries
            figures.startup_seconds = polls["seconds"][0]
            figures.startup_cpu_seconds = polls["cpu_seconds"][0]
            figures.after_call = polls["after_call"]
            figures.publish_cpu = polls["publish_cpu"]
        ports = next_event("serving")["ports"]
        packed = b""
        for _ in range(scrapes):
            seconds, plain = scrape(ports["exporter"], gzip=False)
            figures.plain.append(seconds)
            figures.plain_bytes = len(plain)
            seconds, packed = scrape(ports["exporter"], gzip=True)
            figures.gzip.append(seconds)
            figures.gzip_bytes = len(packed)
            if "floor" in ports:
                figures.floor.append(scrape(ports["floor"], gzip=False)[0])
                figures.floor_gzip.append(scrape(ports["floor"], gzip=True)[0])
        if size.burst:
            served = set(re.findall(rb'\{query="([^"]*)"', gzip.decompress(packed)))
            figures.queries_served = len(served)
        process.stdin.write("stop\n")
        process.stdin.flush()
        figures.rss_bytes = next_event("memory")["rss_bytes"]
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return figures


def machine(cpus: str) -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pinned = f", targets pinned to CPU {cpus}" if cpus else ""
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}{pinned}"


def ms(seconds: list[float]) -> str:
    if not seconds:
        return "-"
    return f"{statistics.median(seconds) * 1e3:,.0f} / {max(seconds) * 1e3:,.0f}"


def ratio(reference: float, exporter: float) -> str:
    if exporter <= 0:
        return "-"
    return f"{reference / exporter:,.1f}x"


Measure = tuple[str, Callable[["Figures"], str], Callable[["Figures"], float] | None]


def measures_for(size: Size) -> list[Measure]:
    """(measure, how a target's figure is shown, the value compared with the reference)."""

    def median_plain(f: Figures) -> float:
        return statistics.median(f.plain)

    def median_gzip(f: Figures) -> float:
        return statistics.median(f.gzip)

    def versus_bare(mine: list[float], bare: list[float]) -> str:
        if not mine or not bare:
            return "-"
        return f"{statistics.median(mine) / statistics.median(bare):.2f}x"

    rows: list[Measure] = [
        (
            "poll-to-publish, µs/sample wall (CPU)",
            lambda f: f"{f.publish_us_per_sample:.2f} ({f.publish_cpu_us_per_sample:.2f})",
            lambda f: f.publish_us_per_sample,
        ),
    ]
    if size.burst:
        rows += [
            (
                "start-up: all queries due at once, until the last is served, s",
                lambda f: f"{f.startup_seconds:,.2f} (CPU {f.startup_cpu_seconds:,.2f})",
                None,
            ),
            (
                "API call returned to query served, s median / worst",
                lambda f: (
                    f"{statistics.median(f.after_call):,.2f} / {max(f.after_call):,.2f}"
                    if f.after_call
                    else "-"
                ),
                None,
            ),
            (
                "CPU per publish, ms median / worst (publishes over 2 ms)",
                lambda f: (
                    f"{statistics.median(f.publish_cpu) * 1e3:,.2f} / "
                    f"{max(f.publish_cpu) * 1e3:,.2f} "
                    f"({sum(cpu > 0.002 for cpu in f.publish_cpu):,} of {len(f.publish_cpu):,})"
                    if f.publish_cpu
                    else "-"
                ),
                None,
            ),
            (
                "CPU per poll (fetch to publish), ms",
                lambda f: f"{f.publish_cpu_seconds / max(1, f.queries) * 1e3:,.2f}",
                None,
            ),
            ("queries on /metrics", lambda f: f"{f.queries_served:,}", None),
        ]
    rows += [
        ("/metrics plain, ms median / worst", lambda f: ms(f.plain), median_plain),
        (
            "bare aiohttp, same plain bytes, ms (plain / bare)",
            lambda f: f"{ms(f.floor)} ({versus_bare(f.plain, f.floor)})",
            None,
        ),
        ("/metrics gzip, ms median / worst", lambda f: ms(f.gzip), median_gzip),
        (
            "bare aiohttp, same gzip bytes, ms (gzip / bare)",
            lambda f: f"{ms(f.floor_gzip)} ({versus_bare(f.gzip, f.floor_gzip)})",
            None,
        ),
        (
            "body plain / gzip, MB",
            lambda f: f"{f.plain_bytes / 1e6:.1f} / {f.gzip_bytes / 1e6:.1f}",
            None,
        ),
        (
            "resident memory, bytes/sample",
            lambda f: f"{f.rss_per_sample:,.0f}",
            lambda f: f.rss_per_sample,
        ),
        (
            "largest event-loop stall in a poll, ms",
            lambda f: f"{f.stall_seconds * 1e3:,.1f}",
            lambda f: f.stall_seconds,
        ),
    ]
    return rows


def table(trees: list[str], results: list[tuple[Size, dict[str, Figures], Figures | None]]) -> str:
    """One line per size and measure: a column per measured tree, then the reference."""
    lines = [
        "| rows x queries | samples | measure | "
        + " | ".join(trees)
        + " | reference | reference / exporter |",
        "|---|---:|---|" + "---:|" * len(trees) + "---:|---:|",
    ]
    for size, ours, ref in results:
        mine = ours[THIS_TREE]
        for measure, shown, value in measures_for(size):
            theirs, factor = "-", "-"
            if ref is not None and value is not None:
                theirs, factor = shown(ref), ratio(value(ref), value(mine))
            cells = [shown(ours[tree]) for tree in trees]
            lines.append(
                f"| {size.label} | {mine.series:,} | {measure} | "
                + " | ".join(cells)
                + f" | {theirs} | {factor} |"
            )
    return "\n".join(lines)


def parse_many(value: str) -> Size | None:
    if value == "none":
        return None
    rows, _, queries = value.partition("x")
    return Size(int(rows), int(queries), burst=True)


def main(argv: list[str] | None = None) -> None:
    # As the exporter's entry point does (cli.main): no `_created` series.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rows", default="1000,7500", help="rows per answer, comma-separated; 'none' for none"
    )
    parser.add_argument("--queries", default="1,10", help="queries, comma-separated")
    parser.add_argument(
        "--many",
        default="20x2000",
        help="the many-small-queries row, ROWSxQUERIES, all due at once; 'none' to skip",
    )
    parser.add_argument("--repeats", type=int, default=7, help="poll rounds timed per target")
    parser.add_argument(
        "--many-repeats", type=int, default=2, help="rounds of the many-small-queries row"
    )
    parser.add_argument("--scrapes", type=int, default=7, help="scrapes per kind per target")
    parser.add_argument("--universe", type=int, default=20000, help="simulated connections")
    parser.add_argument(
        "--reference-max-rows",
        type=int,
        default=10000,
        help="skip the reference when rows x queries exceeds this",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also measure the exporter package of the checkout at PATH, in a column NAME",
    )
    parser.add_argument(
        "--cpus",
        default="",
        help="pin every target to these CPUs (e.g. 0: one core, as a 500m CPU limit allows)",
    )
    args = parser.parse_args(argv)
    sizes = [
        Size(int(rows), int(queries))
        for rows in ([] if args.rows == "none" else args.rows.split(","))
        for queries in args.queries.split(",")
    ]
    many = parse_many(args.many)
    if many is not None:
        sizes.append(many)
    checkouts = {THIS_TREE: ROOT}
    for item in args.compare:
        name, _, path = item.partition("=")
        if not path or name in checkouts or not (Path(path) / "exporter").is_dir():
            raise SystemExit(f"--compare {item}: want NAME=PATH, PATH holding exporter/")
        checkouts[name] = Path(path)
    print(f"machine: {machine(args.cpus)}", flush=True)
    for name, path in checkouts.items():
        print(f"column {name}: exporter from {path.resolve()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        scratch = Path(directory)
        trees = {name: tree_directory(name, path, scratch) for name, path in checkouts.items()}
        bodies = asyncio.run(fetch_bodies({size.rows for size in sizes}, args.universe, scratch))
        for size in sizes:
            repeats = args.many_repeats if size.burst else args.repeats
            ours = {}
            for name, tree in trees.items():
                print(f"measuring {size.label}: {name} ...", flush=True)
                ours[name] = measure(
                    "exporter",
                    tree,
                    bodies[size.rows],
                    size,
                    repeats=repeats,
                    scrapes=args.scrapes,
                    cpus=args.cpus,
                )
            ref = None
            if not size.burst and size.rows * size.queries <= args.reference_max_rows:
                print(f"measuring {size.label}: reference ...", flush=True)
                ref = measure(
                    "reference",
                    ROOT,
                    bodies[size.rows],
                    size,
                    repeats=3,
                    scrapes=args.scrapes,
                    cpus=args.cpus,
                )
            results.append((size, ours, ref))
    print()
    print(table(list(trees), results))
