"""A bounded soak: the installed CLI polls seven queries (of every collector) every second
for about two minutes while the simulator cycles through every fault. Memory, tasks and
connections stay flat, no traceback appears, no key leaks, and every query is healthy once
the faults stop.

Bounds (after a 15 s warm-up): resident memory grows by less than 20 MB; the asyncio task
count is back to its warm-up value after recovery; open sockets never exceed one per query
(each has at most one request in flight; idle keep-alive connections are pooled) plus the
listening socket, the event loop's self-pipe and the scrape, during the faults and after.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import (
    Samples,
    http_get,
    parse_metrics,
    start_exporter,
    start_simulator,
    wait_for,
)

# About two minutes by design, more on a busy machine: above the suite's default timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.soak, pytest.mark.timeout(900)]

API_KEY = "soak-api-key-00112233445566778899aabb"
APP_KEY = "soak-app-key-ffeeddccbbaa99887766554433221100"
CONFIG = """
datadog: {timeout: 1s, max_response_size: 1048576}
connections:
  - {name: pairs, group_by: [client_service, server_service], interval: 1s, stale_after: 1h}
  - {name: teams, group_by: [client_team], interval: 1s, stale_after: 1h}
  - {name: total, interval: 1s, stale_after: 1h}
dns:
  - {name: lookups, interval: 1s, stale_after: 1h}
cases:
  - {name: by_status, group_by: [status], interval: 1s, stale_after: 1h}
audience:
  - {name: users, entity: users, interval: 1s, stale_after: 1h}
network_health:
  - {name: insights, interval: 1s, stale_after: 1h}
"""
QUERIES = 7
FAULTS: list[dict[str, object]] = [
    {"kind": "truncated"},
    {"kind": "malformed"},
    {"kind": "html"},
    {"kind": "html", "status": 200},
    {"kind": "wrong_shape"},
    {"kind": "huge", "size_bytes": 4 * 1024 * 1024},
    {"kind": "hang"},
    {"kind": "drip", "seconds": 0.3, "chunk_size": 64},
    {"kind": "status", "status": 503},
    {"kind": "status", "status": 400, "error_shape": "generic"},
    {"kind": "rate_limit", "reset_seconds": 2},
    {"kind": "latency", "seconds": 0.5},
]
FAULT_SECONDS = 5.0
WARM_UP_SECONDS = 15.0
RSS_GROWTH_BOUND = 20 * 1024 * 1024
SOCKET_BOUND = QUERIES + 4  # the loop's self-pipe pair, the listening socket, the scrape


def control(base: str, method: str, body: object = None) -> None:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + "/_simulator/faults", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5):
        pass


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while we looked
            count += os.readlink(fd).startswith("socket:")
    return count


def scrape(base: str) -> Samples:
    return parse_metrics(http_get(base + "/metrics").decode())


def ups(samples: Samples) -> dict[str, float]:
    return {dict(lab)["query"]: v for (n, lab), v in samples.items() if n == "datadog_exporter_up"}


def tasks(samples: Samples) -> float:
    return float(samples[("datadog_exporter_asyncio_tasks", frozenset())])


def lasting_tasks(base: str) -> float:
    """The event loop's tasks without the passing ones: the fewest of ten scrapes 0.1 s
    apart. A publish runs as a task while it lasts (scheduler/writer.py), so one scrape may
    count a poll's publish; a leaked task is there at every scrape."""
    counts = []
    for _ in range(10):
        counts.append(tasks(scrape(base)))
        time.sleep(0.1)
    return min(counts)


def all_up(base: str) -> Samples | None:
    samples = scrape(base)
    values = ups(samples)
    return samples if len(values) == QUERIES and all(v == 1 for v in values.values()) else None


def test_soak_through_every_fault(tmp_path: Path) -> None:
    simulator, sim_url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    config = tmp_path / "exporter.yml"
    config.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(DD_API_URL=sim_url, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    exporter, base = start_exporter(
        tmp_path, "--config.file", str(config), "--log.level", "debug", env=env
    )
    pid = exporter.popen.pid
    try:
        wait_for(lambda: all_up(base), timeout=30, what="all queries up")
        time.sleep(WARM_UP_SECONDS)
        baseline = all_up(base)
        assert baseline is not None
        base_rss, base_sockets, base_tasks = rss_bytes(pid), sockets(pid), lasting_tasks(base)

        peak_rss, peak_sockets = base_rss, base_sockets
        for fault in FAULTS:
            control(sim_url, "POST", {"endpoint": "*", **fault})
            ends = time.monotonic() + FAULT_SECONDS
            while time.monotonic() < ends:
                started = time.monotonic()
                scrape(base)  # /metrics keeps answering whatever Datadog does
                assert time.monotonic() - started < 2.0
                peak_rss = max(peak_rss, rss_bytes(pid))
                peak_sockets = max(peak_sockets, sockets(pid))
                time.sleep(0.5)
            control(sim_url, "DELETE")

        recovered = wait_for(lambda: all_up(base), timeout=30, what="recovery after faults")
        time.sleep(3)  # let connections the faults left half-open be closed and reaped
        recovered = scrape(base)
        final_rss, final_sockets, final_tasks = rss_bytes(pid), sockets(pid), lasting_tasks(base)
        errors = {
            dict(lab)["reason"]
            for (n, lab), _ in recovered.items()
            if n == "datadog_exporter_poll_errors_total"
        }
    finally:
        code = exporter.terminate()
        simulator.terminate()
    report = (
        f"rss {base_rss >> 20} -> {final_rss >> 20} MiB (peak {peak_rss >> 20}), "
        f"sockets {base_sockets} -> {final_sockets} (peak {peak_sockets}), "
        f"tasks {base_tasks} -> {final_tasks}"
    )
    print(report)
    assert code == 0
    assert final_rss - base_rss < RSS_GROWTH_BOUND, report
    assert final_tasks == base_tasks, report
    assert max(peak_sockets, final_sockets) <= SOCKET_BOUND, report
    # Every kind of failure really happened.
    assert {"decode_error", "http_error", "server_error", "timeout", "too_large"} <= errors
    assert errors & {"rate_limited", "rate_budget"}
    output = exporter.output()
    assert "Traceback" not in output
    assert API_KEY not in output and APP_KEY not in output
