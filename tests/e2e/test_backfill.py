"""End to end: `datadog-cnm-exporter backfill` against the simulator, through promtool into
Debian's Prometheus, next to the live exporter; resumes after SIGKILL; spends the rate limit
without a 429; lists and retries failed windows.

Every process listens on 127.0.0.1 (free ports); every wait is bounded.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulator import Scenario, SimulatorOptions
from tests.helpers import Process, dying_with_parent, exporter_command, require_tool, wait_for

from .backfill_support import (
    JOB,
    Expected,
    Simulators,
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
network_health:
  - name: insights
    interval: 10m
    window: 10m
"""
PAIR = {"client_service": "checkout", "server_service": "payments-db"}


def _day(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def _aligned(t: float) -> int:
    return math.floor(t / STEP) * STEP


def _certificate_crossing_14_days(now: float) -> Scenario:
    """api.example.com has 15 days left 39 hours ago, 14 from 15 hours ago (both inside the
    backfilled range, whatever the time of day)."""
    start = int(now) - 39 * 3600
    return Scenario(
        "nhi_certificate_expiry",
        {"domain_name": "api.example.com"},
        15.0,
        start,
        start + 10 * 86400,
    )


def _storm_yesterday_afternoon(now: float) -> Scenario:
    midnight = int(now // 86400 * 86400)
    return Scenario(
        "retransmit_storm",
        PAIR,
        start=midnight - 86400 + 14 * 3600,
        end=midnight - 86400 + 16 * 3600,
    )


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Two days of one connections and one dns query, backfilled and turned into blocks."""
    require_tool("promtool")
    require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("backfill")
    now = time.time()
    storm = _storm_yesterday_afternoon(now)
    certificate = _certificate_crossing_14_days(now)
    simulators = Simulators(tmp)
    try:
        url = simulators(
            "--rate-limit",
            "100000",
            "--scenario",
            "retransmit_storm:client_service=checkout,server_service=payments-db:50:"
            f"{storm.start}-{storm.end}",
            "--scenario",
            f"nhi_certificate_expiry:domain_name=api.example.com:15:{certificate.start}-{certificate.end}",
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
        yield {
            "tmp": tmp,
            "url": url,
            "config": config,
            "stderr": result.stderr,
            "output": output,
            "data": data,
            "start": start,
            "end": end,
            "port": exporter_port,
            "expected": Expected(
                CONFIG, SimulatorOptions(api_key="x", app_key="y"), (storm, certificate), targets
            ),
        }
    finally:
        simulators.stop_all()


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
        f"{query}-{day}.om"
        for query in ("connections-pairs", "dns-names", "network_health-insights")
        for day in days
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
    # The certificate that crossed 14 days to expiry at midnight is in the history too.
    expiry = {
        value
        for (name, labels), points in got.items()
        if name == "datadog_network_health_certificate_expiry_seconds"
        and ("domain", "api.example.com") in labels
        for value in points.values()
    }
    assert {15 * 86400.0, 14 * 86400.0} <= expiry


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


# --- resuming, rate limits, failures, progress ------------------------------------------------

SMALL = """
datadog: {timeout: 5s}
connections:
  - {name: total, interval: 30m, window: 5m}
dns:
  - {name: names, interval: 30m, window: 5m}
"""


def _small_run(tmp_path: Path, config: str = SMALL) -> list[str]:
    path = tmp_path / "small.yml"
    path.write_text(config)
    end = _aligned(time.time() - 4 * 3600)
    return ["--config.file", str(path), "--start", str(end - 3 * 86400), "--end", str(end)]


def test_a_run_killed_midway_resumes_into_the_same_files(
    tmp_path: Path, simulator: Simulators
) -> None:
    """SIGKILL, rerun: identical files to an uninterrupted run, no recorded window fetched
    again (only the ones in flight at the kill), no half-written file under a final name."""
    url = simulator("--rate-limit", "30", "--rate-limit-period", "1")
    args = _small_run(tmp_path)
    resumed, reference = tmp_path / "resumed", tmp_path / "reference"
    log = tmp_path / "killed.log"
    with log.open("wb") as out:
        killed = subprocess.Popen(
            dying_with_parent(backfill_command(*args, "--output", str(resumed))),
            stdout=out, stderr=subprocess.STDOUT, env=cli_env(url), start_new_session=True,
        )  # fmt: skip
    kill_when(killed, log, "percent=40", timeout=60)
    for name, body in om_files(resumed).items():  # what carries a final name is complete
        assert body.endswith(b"# EOF\n"), name
    first = [r for r in requests_of(url) if r["status"] == 200]
    rerun = run_backfill(url, *args, "--output", str(resumed))
    assert rerun.returncode == 0, rerun.stderr
    assert "already recorded (resuming)" in rerun.stderr
    windows = Counter((r["endpoint"], r["query"]["to"]) for r in requests_of(url))
    assert max(windows.values()) <= 2
    assert sum(count - 1 for count in windows.values()) <= 2 * 2  # in flight per endpoint
    assert len(first) < len(windows)
    clear_requests(url)
    result = run_backfill(url, *args, "--output", str(reference))
    assert result.returncode == 0, result.stderr
    assert om_files(resumed) == om_files(reference) and len(om_files(reference)) == 8
    assert not list(resumed.glob("*.partial"))
    again = run_backfill(url, *args, "--output", str(resumed))  # nothing left to do
    assert again.returncode == 0 and "0 windows fetched" in again.stderr, again.stderr


def test_the_run_spends_at_least_90_percent_of_the_rate_limit_without_a_429(
    tmp_path: Path, simulator: Simulators
) -> None:
    limit, period = 40, 10
    url = simulator("--rate-limit", str(limit), "--rate-limit-period", str(period))
    config = tmp_path / "one.yml"
    config.write_text("connections:\n  - {name: total, interval: 5m, window: 5m}\n")
    end = _aligned(time.time() - 4 * 3600)
    windows = 4 * limit + limit // 2
    result = run_backfill(
        url, "--config.file", str(config), "--start", str(end - (windows - 1) * 300),
        "--end", str(end), "--step", "5m", "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = requests_of(url)
    assert len(records) == windows, [
        (r["status"], round(r["at"], 2)) for r in records if r["status"] != 200
    ]
    assert [r for r in records if r["status"] != 200] == []
    periods = Counter(int(r["at"] // period) for r in records)
    full = sorted(periods)[1:-1]  # the periods the run covered from start to end
    assert len(full) >= 3, periods
    share = sum(periods[p] for p in full) / (len(full) * limit)
    assert share >= 0.9, (share, periods)
    # The run's own account of it, from the X-RateLimit-* headers.
    reported = re.search(
        r"(\d+)% of the allowed calls in (\d+) full rate-limit periods", result.stderr
    )
    assert reported and int(reported[1]) >= 90 and int(reported[2]) >= 2, result.stderr
    assert "Datadog's limit: 14,400 per hour" in result.stderr


def test_a_429_is_waited_out_and_the_run_completes(tmp_path: Path, simulator: Simulators) -> None:
    url = simulator()
    arm_fault(url, endpoint="connections", kind="rate_limit", reset_seconds=3, count=1)
    config = tmp_path / "one.yml"
    config.write_text("connections:\n  - {name: total, interval: 5m, window: 5m}\n")
    end = _aligned(time.time() - 4 * 3600)
    result = run_backfill(
        url, "--config.file", str(config), "--start", str(end - 19 * 300), "--end", str(end),
        "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = requests_of(url)
    limited = [i for i, r in enumerate(records) if r["status"] == 429]
    # Only the requests already in flight when the 429 came (both first calls) got it...
    assert limited and limited == list(range(len(limited))) and len(limited) <= 2, limited
    # ...and the next call waited for the reset.
    after = records[len(limited)]
    assert after["status"] == 200 and after["time"] - records[0]["time"] >= 2.9
    assert sum(r["status"] == 200 for r in records) == 20
    assert "waiting for the reset" in result.stderr
    assert f"{len(limited)} answered 429" in result.stderr


def test_failed_windows_are_listed_with_the_command_that_retries_just_them(
    tmp_path: Path, simulator: Simulators
) -> None:
    url = simulator()
    arm_fault(url, endpoint="dns", kind="status", status=400, count=3)
    args = _small_run(tmp_path, SMALL + "cases:\n  - {name: c, group_by: [status]}\n")
    output = tmp_path / "out"
    result = run_backfill(url, *args, "--output", str(output))
    assert result.returncode == 3, result.stderr
    assert "3 windows failed after retries" in result.stderr
    assert "dns/names" in result.stderr and "http_error: dns: HTTP 400" in result.stderr
    [command] = [
        line.strip() for line in result.stderr.splitlines() if line.strip().startswith(
            "datadog-cnm-exporter backfill"
        )
    ]  # fmt: skip
    written = om_files(output)
    # The failed windows are dns' first three: the dns files of their days wait for them.
    first = math.ceil(int(args[args.index("--start") + 1]) / 1800) * 1800
    waiting = {_day(first), _day(first + 3600)}
    days = {name[-13:-3] for name in written if name.startswith("connections-")}
    assert set(written) == {f"connections-total-{d}.om" for d in days} | {
        f"dns-names-{d}.om" for d in days - waiting
    }
    clear_requests(url)
    argv = shlex.split(command)
    assert argv[:2] == ["datadog-cnm-exporter", "backfill"] and "dns/names" in argv
    retry = subprocess.run(
        [*exporter_command(), *argv[1:]], capture_output=True, text=True, timeout=120,
        env=cli_env(url),
    )  # fmt: skip
    assert retry.returncode == 0, retry.stderr
    assert len(requests_of(url)) == 3  # just the failed windows
    assert len(om_files(output)) == 8 and len(om_files(output)) > len(written)


def test_without_a_terminal_progress_is_log_lines_and_json_stays_json(
    tmp_path: Path, simulator: Simulators
) -> None:
    url = simulator()
    args = _small_run(tmp_path, SMALL + "audience:\n  - {entity: users}\n")
    result = run_backfill(url, *args, "--log.format", "json", "--output", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    progress = [r for r in records if r["msg"] == "progress"]
    assert 15 <= len(progress) <= 21 and progress[-1]["percent"] == 100
    assert {"windows_done", "windows_total", "calls", "rate_limit_pauses", "eta_seconds"} <= set(
        progress[0]
    )
    assert sum("no history" in r["msg"] for r in records) == 1
    assert any(r["msg"].startswith("complete:") for r in records)


def test_on_a_terminal_progress_is_a_bar(tmp_path: Path, simulator: Simulators) -> None:
    import pty

    url = simulator()
    args = _small_run(tmp_path)
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        dying_with_parent(backfill_command(*args, "--output", str(tmp_path / "o"))),
        stdout=subprocess.DEVNULL, stderr=secondary, stdin=subprocess.DEVNULL, env=cli_env(url),
    )  # fmt: skip
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(60) == 0
    os.close(primary)
    text = seen.decode(errors="replace")
    assert re.search(r"\d+/\d+ \[", text) and "window" in text and "calls=" in text, text[-2000:]
    assert "msg=progress" not in text


def test_output_dash_streams_one_exposition_to_stdout(
    tmp_path: Path, simulator: Simulators
) -> None:
    promtool = require_tool("promtool")
    url = simulator()
    args = _small_run(tmp_path)
    result = run_backfill(url, *args, "--output", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("# EOF\n")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    names = [f.name for f in text_string_to_metric_families(result.stdout)]
    assert len(names) == len(set(names)) and "datadog_exporter_window_seconds" in names
    stream = tmp_path / "all.om"
    stream.write_text(result.stdout)
    blocks = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(stream), str(tmp_path / "b")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert blocks.returncode == 0, blocks.stderr


def test_memory_stays_flat_however_long_the_range(tmp_path: Path, simulator: Simulators) -> None:
    url = simulator("--rate-limit", "100000")
    config = tmp_path / "one.yml"
    config.write_text(
        "connections:\n  - {name: pairs, group_by: [client_service, server_service],"
        " limit: 500, interval: 5m}\n"
    )
    end = _aligned(time.time() - 4 * 3600)

    def peak(days: int) -> float:
        result = run_backfill(
            url, "--config.file", str(config), "--start", str(end - days * 86400),
            "--end", str(end), "--step", "1h", "--output", str(tmp_path / f"d{days}"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return float(re.findall(r"peak memory (\d+) MiB", result.stderr)[0])

    one, eight = peak(1), peak(8)
    assert eight - one < 15, (one, eight)


def test_refused_keys_stop_the_run_and_bad_usage_is_named(
    tmp_path: Path, simulator: Simulators
) -> None:
    url = simulator()
    args = _small_run(tmp_path)
    env = {**cli_env(url), "DD_API_KEY": "wrong-api-key-0123456789abcdef"}
    refused = subprocess.run(
        backfill_command(*args, "--output", str(tmp_path / "o")),
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert refused.returncode == 1, refused.stderr
    assert "HTTP 403" in refused.stderr and "Traceback" not in refused.stderr
    assert "wrong-api-key-0123456789abcdef" not in refused.stderr
    assert len(requests_of(url)) <= 2 * 2  # stopped at the first answers, both endpoints
    for extra, message in (
        (["--query", "nope"], "no such query (queries with history: connections/total, dns/names)"),
        (["--step", "90.5s"], "whole number of seconds"),
        (["--label", "__x=1"], "valid label name"),
        (["--label", "query=1"], "has a label of that name"),
    ):
        result = run_backfill(url, *args, *extra, "--output", str(tmp_path / "u"))
        assert result.returncode == 2 and message in result.stderr, result.stderr
    bad_time = run_backfill(url, *args, "--start", "yesterday", "--output", str(tmp_path / "u"))
    assert bad_time.returncode == 2 and "RFC 3339" in bad_time.stderr
    old = run_backfill(
        url,
        *args,
        "--start",
        "15d",
        "--end",
        "14d",
        "--step",
        "2h",
        "--output",
        str(tmp_path / "r"),
    )  # a start before the retention warns, and the run goes on
    assert old.returncode == 0 and "before Datadog's retention" in old.stderr, old.stderr


def test_family_writes_only_the_named_families_as_a_full_run_writes_them(
    tmp_path: Path, simulator: Simulators
) -> None:
    """--family leaves the other families out of the files, keeps the named ones byte for
    byte as a run without it writes them, and binds the output directory like --start does."""
    url = simulator()
    args = _small_run(tmp_path)
    wanted = ("datadog_cnm_tcp_retransmits", "datadog_dns_requests")
    picked = [arg for name in wanted for arg in ("--family", name)]
    full = run_backfill(url, *args, "--output", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    some = run_backfill(url, *args, *picked, "--output", str(tmp_path / "some"))
    assert some.returncode == 0, some.stderr

    def lines_of(files: dict[str, bytes]) -> dict[str, list[bytes]]:
        return {
            name: [
                line
                for line in body.splitlines()
                if line.split(b"{")[0].split(b" ")[-1].decode() in wanted
            ]
            for name, body in files.items()
        }

    every, only = om_files(tmp_path / "full"), om_files(tmp_path / "some")
    assert only.keys() == every.keys() and len(only) == 8
    for body in only.values():
        samples = {line.split(b"{")[0] for line in body.splitlines() if b"{" in line}
        assert samples <= {name.encode() for name in wanted}, samples
        assert body.endswith(b"# EOF\n")
    assert lines_of(only) == lines_of(every)
    assert any(lines for lines in lines_of(only).values())
    other = run_backfill(
        url, *args, "--family", wanted[0], "--output", str(tmp_path / "some")
    )  # another family set cannot resume into these files
    assert other.returncode == 1 and "--family" in other.stderr, other.stderr
    bad = run_backfill(url, *args, "--family", "not-a-name", "--output", str(tmp_path / "u"))
    assert bad.returncode == 2 and "not a metric family name" in bad.stderr, bad.stderr
