"""What the backfill end-to-end tests share: the simulator, the CLI, Prometheus, expectations.

Expectations come from the simulator's own data functions (``Simulator.answer``) rendered
through the live exporter's collector jobs, so a test compares what Prometheus holds with
what the simulator answers for each window, independently of the backfill's own code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from exporter.collectors.registry import BY_SECTION, REGISTRY
from exporter.config.schema import TimeWindowQuery, parse_config
from simulator import Scenario, Simulator, SimulatorOptions
from tests.helpers import (
    Process,
    exporter_command,
    parse_metrics,
    rendered_text,
    require_tool,
    start_simulator,
    wait_for,
)

API_KEY = "backfill-api-key-0123456789abcdef"
APP_KEY = "backfill-app-key-fedcba9876543210"
JOB = "datadog-cnm-exporter"
Series = tuple[str, frozenset[tuple[str, str]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Simulators:
    """Starts simulator processes; the owning fixture stops them all."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Process] = []

    def __call__(self, *extra: str) -> str:
        process, url = start_simulator(self.directory, *extra, api_key=API_KEY, app_key=APP_KEY)
        self.started.append(process)
        return url

    def stop_all(self) -> None:
        for process in self.started:
            process.terminate()


def cli_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(DD_API_URL=url, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    return env


def backfill_command(*args: str) -> list[str]:
    return [*exporter_command(), "backfill", *args]


def run_backfill(url: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        backfill_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(url),
        stdin=subprocess.DEVNULL,
    )


def requests_of(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_simulator/requests", timeout=10) as response:
        records: list[dict[str, Any]] = json.load(response)["requests"]
        return records


def clear_requests(url: str) -> None:
    request = urllib.request.Request(f"{url}/_simulator/requests", method="DELETE")
    urllib.request.urlopen(request, timeout=10).close()


def arm_fault(url: str, **fault: Any) -> None:
    request = urllib.request.Request(
        f"{url}/_simulator/faults",
        data=json.dumps(fault).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()


def promtool_blocks(files: list[Path], data_dir: Path) -> None:
    """``promtool tsdb create-blocks-from openmetrics`` for each file, into ``data_dir``."""
    promtool = require_tool("promtool")
    data_dir.mkdir(parents=True, exist_ok=True)
    for path in files:
        result = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(path), str(data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"promtool refused {path.name}: {result.stderr}"


@contextmanager
def prometheus(tmp_path: Path, data_dir: Path, targets: list[str]) -> Iterator[str]:
    """Debian's Prometheus on ``data_dir`` (127.0.0.1, a free port) scraping ``targets``."""
    binary = require_tool("prometheus")
    port = free_port()
    config = tmp_path / f"prometheus-{port}.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
            }
        )
    )
    process = Process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data_dir}",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / f"prometheus-{port}.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=2), 30, what="ready")
        yield url
    finally:
        process.terminate()


def api(url: str, path: str, **params: str) -> Any:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}?{query}", timeout=60) as response:
        document = json.load(response)
    assert document["status"] == "success", document
    return document["data"]


def query_range(
    url: str, expr: str, start: int, end: int, step: int
) -> dict[Series, dict[int, float]]:
    """Every series ``expr`` returns, with its values by timestamp."""
    data = api(
        url, "/api/v1/query_range", query=expr, start=str(start), end=str(end), step=str(step)
    )
    out: dict[Series, dict[int, float]] = {}
    for item in data["result"]:
        labels = dict(item["metric"])
        name = labels.pop("__name__", "")
        out[(name, frozenset(labels.items()))] = {int(t): float(v) for t, v in item["values"]}
    return out


def instant(url: str, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = api(url, "/api/v1/query", query=expr)["result"]
    return result


class Expected:
    """What the live exporter would serve at ``t`` with ``config`` against a simulator with
    these options and scenarios, plus the target labels Prometheus would add."""

    def __init__(
        self,
        config_text: str,
        options: SimulatorOptions,
        scenarios: tuple[Scenario, ...] = (),
        targets: dict[str, str] | None = None,
    ) -> None:
        self.config = parse_config(config_text)
        self.simulator = Simulator(options)
        for scenario in scenarios:
            self.simulator.set_scenario(scenario)
        self.targets = targets or {"job": JOB}

    def queries(self) -> list[tuple[str, TimeWindowQuery]]:
        """The configured queries of every collector with history, in registry order."""
        return [
            (entry.section, q)
            for entry in REGISTRY
            if entry.history
            for q in getattr(self.config, entry.section)
        ]

    def window(self, collector: str, query: TimeWindowQuery, t: int) -> dict[Series, float]:
        job = BY_SECTION[collector].job(query, "default", False)
        body = self.simulator.answer(job.endpoint, job.request(float(t)).params)  # type: ignore[arg-type]
        rendered = job.render(job.decode(body))
        samples = parse_metrics(rendered_text(rendered))
        samples[
            (
                "datadog_exporter_window_seconds",
                frozenset({("collector", collector), ("query", query.name)}),
            )
        ] = query.window
        extra = frozenset(self.targets.items())
        # Prometheus stores a label with an empty value as no label at all.
        return {
            (name, frozenset(pair for pair in labels if pair[1]) | extra): value
            for (name, labels), value in samples.items()
        }


def om_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.om"))}


def kill_when(process: subprocess.Popen[bytes], log: Path, needle: str, timeout: float) -> None:
    """SIGKILL ``process`` as soon as ``needle`` shows in its log."""
    deadline = time.monotonic() + timeout
    while needle not in log.read_text(errors="replace"):
        assert process.poll() is None, f"finished before {needle!r}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {needle!r} within {timeout}s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def move_blocks(source: Path, data_dir: Path) -> int:
    """Move the block directories promtool wrote into Prometheus' data directory."""
    moved = 0
    for block in source.iterdir():
        if block.is_dir() and (block / "meta.json").exists():
            shutil.move(str(block), str(data_dir / block.name))
            moved += 1
    return moved
