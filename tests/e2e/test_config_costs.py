"""The installed CLI given a 50 MB configuration file (comments, then one unknown key): at
start-up and on SIGHUP it is refused by its size in one short line, in bounded time and
memory. Measured before the limit: 14 s of CPU and a 405 MiB peak at start-up, a 52 MB
"reload failed" line and RSS from 56 to 450 MiB on reload (the sidecar's limit is 256Mi).

Bounds are generous for a loaded 2-core machine and far below those figures: a start-up
that fails costs about 1 s of CPU and 60 MiB here, the imports included.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import exporter_command, start_exporter, start_simulator

pytestmark = pytest.mark.e2e

API_KEY = "e2e-costs-api-key-0123456789abcdef"
APP_KEY = "e2e-costs-app-key-fedcba9876543210fedcba"
BIG = 50 * 1024 * 1024
PEAK_MIB = 150
CPU_SECONDS = 5.0
WALL_SECONDS = 30.0
LINE_CHARS = 400

# Runs the command given as arguments and prints what it cost: the peak RSS of the child
# alone (this wrapper has no other children), its CPU and wall time.
MEASURE = """
import json, resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "code": done.returncode, "stderr": done.stderr[-100_000:],
    "wall": time.monotonic() - started, "cpu": usage.ru_utime + usage.ru_stime,
    "peak_mib": usage.ru_maxrss / 1024,
}))
"""


def fifty_mb_of_comments(path: Path) -> Path:
    line = b"#" * 79 + b"\n"
    with path.open("wb") as file:
        for _ in range(BIG // len(line)):
            file.write(line)
        file.write(b"colour: red\n")
    return path


def test_a_50_mb_configuration_is_refused_at_start_up_in_one_line_cheaply(
    tmp_path: Path,
) -> None:
    big = fifty_mb_of_comments(tmp_path / "big.yml")
    size = big.stat().st_size
    command = [*exporter_command(), "--config.file", str(big)]
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, timeout=120
    )
    cost = json.loads(result.stdout)
    assert cost["code"] == 1, cost["stderr"]
    assert cost["stderr"].strip() == (
        f"error: cannot read configuration file {big}: {size:,} bytes, above the limit of "
        "4,194,304 bytes (4 MiB) for a configuration file"
    )
    assert cost["peak_mib"] < PEAK_MIB, cost
    assert cost["cpu"] < CPU_SECONDS, cost
    assert cost["wall"] < WALL_SECONDS, cost


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024  # type: ignore[union-attr]


def test_a_50_mb_configuration_is_refused_on_reload_in_one_line_cheaply(tmp_path: Path) -> None:
    simulator, url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    config = tmp_path / "exporter.yml"
    config.write_text("connections:\n  - {name: a, group_by: [client_service], interval: 1h}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(DD_API_URL=url, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    exporter, _ = start_exporter(tmp_path, "--config.file", str(config), env=env)
    try:
        before = peak_rss_mib(exporter.popen.pid)
        fifty_mb_of_comments(tmp_path / "big.yml").replace(config)
        exporter.popen.send_signal(signal.SIGHUP)
        exporter.wait_for_output(r"reload failed", timeout=30)
        line = next(line for line in exporter.output().splitlines() if "reload failed" in line)
        assert len(line) < LINE_CHARS, line[:LINE_CHARS]
        assert f"{config.stat().st_size:,} bytes, above the limit of 4,194,304 bytes" in line
        assert peak_rss_mib(exporter.popen.pid) - before < 30, (before, exporter.popen.pid)
    finally:
        code = exporter.terminate()
        simulator.terminate()
    assert code == 0
    assert "Traceback" not in exporter.output()
