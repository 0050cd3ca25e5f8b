"""End to end: `datadog-cnm-exporter backfill` against the simulator, through promtool into
Debian's Prometheus, next to the live exporter; resumes after SIGKILL; spends the rate limit
without a 429; lists and retries failed windows.

Every process listens on 127.0.0.1 (free ports); every wait is bounded.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.simulator import Scenario, SimulatorOptions
from tests.helpers import Process, exporter_command, require_tool, wait_for

from .backfill_support import (
    JOB,
    Expected,
    arm_fault,
    backfill_command,
    clear_requests,
    cli_env,
    free_port,
    instant,
    kill_when,
    move_blocks,
    om_files,
    prometheus,
    promtool_blocks,
    query_range,
    requests_of,
    run_backfill,
    simulator,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RECORDING_RULES = REPO / "deploy" / "prometheus" / "rules" / "recording.yml"
STEP = 600
CONFIG = """
datadog: {timeout: 10s}
connections:
  - name: pairs
    group_by: [client_service, server_service]
    query: "client_service:checkout OR client_service:cart OR client_service:auth"
    limit: 40
    interval: 10m
    window: 10m
dns:
  - name: names
    interval: 10m
    window: 10m
cases:
  - name: by_status
    group_by: [status]
audience:
  - entity: users
"""
PAIR = {"client_service": "checkout", "server_service": "payments-db"}


def _aligned(t: float) -> int:
    return math.floor(t / STEP) * STEP


def _storm_yesterday_afternoon(now: float) -> Scenario:
    midnight = int(now // 86400 * 86400)
    return Scenario(
        "retransmit_storm",
        PAIR,
        start=midnight - 86400 + 14 * 3600,
        end=midnight - 86400 + 16 * 3600,
    )


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two days of one connections and one dns query, backfilled and turned into blocks."""
    require_tool("promtool")
    require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("backfill")
    now = time.time()
    storm = _storm_yesterday_afternoon(now)
    sim, url = simulator(
        tmp,
        "--rate-limit",
        "100000",
        "--scenario",
        "retransmit_storm:client_service=checkout,server_service=payments-db:50:"
        f"{storm.start}-{storm.end}",
    )
    config = tmp / "exporter.yml"
    config.write_text(CONFIG)
    exporter_port = free_port()
    start, end = _aligned(now - 2 * 86400), _aligned(now - 3 * 3600)
    output = tmp / "out"
    result = run_backfill(
        url,
        "--config.file", str(config),
        "--start", datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--end", str(end),
        "--output", str(output),
        "--label", f"instance=127.0.0.1:{exporter_port}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = tmp / "prometheus-data"
    promtool_blocks(sorted(output.glob("*.om")), data)
    targets = {"job": JOB, "instance": f"127.0.0.1:{exporter_port}"}
    return {
        "tmp": tmp,
        "sim": sim,
        "url": url,
        "config": config,
        "stderr": result.stderr,
        "output": output,
        "data": data,
        "start": start,
        "end": end,
        "port": exporter_port,
        "expected": Expected(CONFIG, SimulatorOptions(api_key="x", app_key="y"), (storm,), targets),
    }


def test_plan_comes_first_and_history_less_queries_are_skipped_once(
    backfilled: dict[str, object],
) -> None:
    stderr = str(backfilled["stderr"])
    lines = stderr.splitlines()
    assert stderr.count("Datadog keeps no history") == 1
    assert "cases/by_status" in stderr and "audience/users" in stderr
    plan = next(i for i, line in enumerate(lines) if line.startswith("API calls"))
    first_progress = next(i for i, line in enumerate(lines) if "msg=progress" in line)
    assert plan < first_progress
    windows = (int(backfilled["end"]) - int(backfilled["start"])) // STEP + 1  # type: ignore[call-overload]
    assert f"{windows:,} calls per query" in stderr
    assert re.search(r"complete: [\d,]+ windows", stderr)


def test_every_step_in_prometheus_is_what_the_simulator_answers(
    backfilled: dict[str, object], tmp_path: Path
) -> None:
    expected: Expected = backfilled["expected"]  # type: ignore[assignment]
    start, end = int(backfilled["start"]), int(backfilled["end"])  # type: ignore[call-overload]
    output: Path = backfilled["output"]  # type: ignore[assignment]
    days = {
        datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d") for t in range(start, end + 1, STEP)
    }
    assert set(om_files(output)) == {  # one file per query and UTC day
        f"{query}-{day}.om" for query in ("connections-pairs", "dns-names") for day in days
    }
    want: dict[tuple[str, frozenset[tuple[str, str]]], dict[int, float]] = {}
    for collector, query in expected.queries():
        for t in range(start, end + 1, STEP):
            for series, value in expected.window(collector, query, t).items():
                want.setdefault(series, {})[t] = value
    names = sorted({name for name, _ in want})
    with prometheus(tmp_path, backfilled["data"], []) as prom:  # type: ignore[arg-type]
        got: dict[tuple[str, frozenset[tuple[str, str]]], dict[int, float]] = {}
        for name in names:
            got.update(query_range(prom, name, start, end, STEP))
    assert set(got) == set(want)
    mismatches = [
        (series, t, got[series].get(t), value)
        for series, points in want.items()
        for t, value in points.items()
        if got[series].get(t) != pytest.approx(value, rel=1e-12)
    ]
    assert not mismatches, mismatches[:5]
    # Not flat: the daily rhythm, and the storm of yesterday afternoon, are in the history.
    pair = frozenset({("query", "pairs"), *PAIR.items(), *expected.targets.items()})
    retransmits = got[("datadog_cnm_tcp_retransmits", pair)]
    packets = got[("datadog_cnm_client_sent_packets", pair)]
    ratios = {t: retransmits[t] / packets[t] for t in retransmits}
    storm = _storm_yesterday_afternoon(end)
    assert storm.start is not None and storm.end is not None
    inside = [r for t, r in ratios.items() if storm.start <= t < storm.end]
    outside = [r for t, r in ratios.items() if not storm.start <= t < storm.end]
    assert inside and min(inside) > 0.2 and max(outside) < 0.05
    assert len(set(packets.values())) > len(packets) / 2


def test_recording_rules_backfill_over_the_range(
    backfilled: dict[str, object], tmp_path: Path
) -> None:
    """`promtool tsdb create-blocks-from rules` turns the backfilled totals into the shipped
    per-second series (they divide by the backfilled datadog_exporter_window_seconds).

    promtool offsets a group's evaluations by a hash of its name, and (2.42) writes nothing
    when its first 2h block holds no evaluation: so --start is 2h-aligned, evaluations run
    every minute, and each backfilled sample is read back through the 5m lookback."""
    promtool = require_tool("promtool")
    expected: Expected = backfilled["expected"]  # type: ignore[assignment]
    start, end = int(backfilled["start"]), int(backfilled["end"])  # type: ignore[call-overload]
    data: Path = backfilled["data"]  # type: ignore[assignment]
    rules_out = tmp_path / "rule-blocks"
    rules_start = math.ceil(start / 7200) * 7200
    with prometheus(tmp_path, data, []) as prom:
        result = subprocess.run(
            [
                promtool, "tsdb", "create-blocks-from", "rules",
                f"--start={rules_start}", f"--end={end}", f"--url={prom}",
                f"--output-dir={rules_out}", "--eval-interval=60s", str(RECORDING_RULES),
            ],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    assert move_blocks(rules_out, data) > 0
    [(collector, query), *_] = expected.queries()
    sample_times = range(rules_start + 6 * 3600, end - STEP, 6 * 3600)
    with prometheus(tmp_path, data, []) as prom:
        for t in sample_times:
            window = expected.window(collector, query, t)
            for source in (
                "tcp_retransmits",
                "tcp_resets",
                "client_sent_bytes",
                "server_sent_packets",
            ):
                record = f"query:datadog_cnm_{source}:per_second"
                got = query_range(prom, record, t + 299, t + 299, STEP)
                want = {
                    labels: value / query.window
                    for (name, labels), value in window.items()
                    if name == f"datadog_cnm_{source}"
                }
                assert want and {labels for _, labels in got} == set(want), record
                for (_, labels), points in got.items():
                    assert points[t + 299] == pytest.approx(want[labels]), (record, t, labels)
            ratio = query_range(
                prom,
                "query:datadog_cnm_tcp_retransmits_per_client_packet:ratio",
                t + 299,
                t + 299,
                60,
            )
            assert ratio


def test_live_series_continue_the_backfilled_ones(
    backfilled: dict[str, object], tmp_path: Path
) -> None:
    """The live exporter scraped by the same Prometheus: one series per label set across the
    boundary, for data series and datadog_exporter_window_seconds alike."""
    data: Path = backfilled["data"]  # type: ignore[assignment]
    port = int(backfilled["port"])  # type: ignore[call-overload]
    start, end = int(backfilled["start"]), int(backfilled["end"])  # type: ignore[call-overload]
    backfilled_points = (end - start) // STEP + 1
    live = Process(
        [*exporter_command(), "--config.file", str(backfilled["config"]),
         "--web.listen-address", f"127.0.0.1:{port}"],
        tmp_path / "exporter.log",
        env=cli_env(str(backfilled["url"])),
    )  # fmt: skip
    try:
        live.wait_for_output(r"msg=listening")
        with prometheus(tmp_path, data, [f"127.0.0.1:{port}"]) as prom:
            for name in ("datadog_cnm_client_sent_bytes", "datadog_dns_requests",
                         "datadog_exporter_window_seconds"):  # fmt: skip

                def scraped(metric: str = name) -> list[dict[str, object]]:
                    return instant(prom, f'{metric}{{job="{JOB}"}}')

                now_series = wait_for(scraped, 60, what=f"a live scrape of {name}")
                counts = instant(prom, f"count_over_time({name}[3d])")
                assert len(counts) == len(
                    {json.dumps(s["metric"], sort_keys=True) for s in now_series}
                ), name
                # each label set: the backfilled points and at least one live one
                assert all(int(c["value"][1]) > backfilled_points for c in counts), (
                    name,
                    counts[:3],
                )
    finally:
        live.terminate()
