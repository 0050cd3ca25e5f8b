"""The alert-quality harness: every shipped alert measured on the simulator's labelled fortnight.

1. The simulator serves the fortnight (simulator/fortnight.py); the project's own
   ``backfill`` fetches its connections, DNS and Network Health Insights history with the
   shipped configuration (deploy/kubernetes/base/config.yml) plus the opt-in
   ``network_health`` query it lacks (``NETWORK_HEALTH_QUERY``, shaped as the shipped CNM
   queries) into OpenMetrics files, only the families the alerts read, directly or through
   the recording rules they need (``--family``).
2. What a backfill cannot hold is written the way the live exporter would have shown it:
   the cases gauges (Case Management has no history), and the exporter's self-metrics
   (``up``, ``datadog_exporter_up``, last success, API requests by code, rows in the last
   answer, rows dropped by ``max_series``). During a Datadog-side fault (5xx, 429) the
   polls fail: the data samples of the fault's span are removed (Prometheus' 5-minute
   lookback then shows the last values for 5 minutes, as the exporter keeps serving them
   for ``max(3 intervals, 5m)``), ``datadog_exporter_up`` is 0, the last success stops,
   and the failed requests are counted under their status code.
3. ``promtool tsdb create-blocks-from openmetrics`` builds the blocks of each day file as
   soon as the backfill has written it, ``promtool tsdb create-blocks-from rules``
   backfills the recording rules the alerts read over the range (one promtool per rule, one
   per core at a time) against a real Prometheus (2.42) serving those blocks, which is then
   restarted on the whole.
4. Every alerting rule is evaluated over the range: its expression by ``query_range`` at
   its group's evaluation interval (steps at multiples of the interval from the fortnight's
   start), then ``for`` applied as Prometheus' rule manager does: a label set is pending
   from the first step its expression returns it, fires at the first step at least
   ``for`` after that, and is reset by any step that does not return it.
5. Each firing episode is scored against the ground truth: an incident is caught when an
   alert meant for it fires between its start and ``GRACE`` after its end with the
   incident's labels; a firing nothing explains is a false firing.

Run ``python -m tests.alerting.harness --write-docs`` to regenerate the table in
docs/alerting.md; tests/alerting/test_alert_quality.py asserts the goals and that the
table is current. Measured: about 4 minutes on two shared cores, most of it the backfill
with the day files' blocks built alongside.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from exporter.backfill.source import WINDOW_FAMILY
from exporter.catalog import data_metric_names
from simulator.fortnight import DAY, Fortnight, Incident
from simulator.fortnight import build as build_fortnight

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
CONFIG = ROOT / "deploy" / "kubernetes" / "base" / "config.yml"
DOCS = ROOT / "docs" / "alerting.md"
SEED = 42
START = 1793577600  # 2026-11-02T00:00:00Z, a Monday
JOB = "datadog-cnm-exporter"
INSTANCE = "10.0.3.17:10173"
HISTORY_QUERIES = (
    ("connections", "svc_to_svc"),
    ("dns", "dns_by_query"),
    ("network_health", "insights"),
)
# The shipped configuration has no network_health query (the section is opt-in: a preview
# endpoint): the harness adds this one, with the shipped CNM queries' interval, window and
# delay, so the Network Health Insights alerts are measured as a user enabling it would see.
NETWORK_HEALTH_QUERY = {"name": "insights", "interval": "60s", "window": "5m", "delay": "1m"}
CASES_QUERY = "open_by_priority"
INTERVAL = 60  # the shipped queries' interval, and the scrape and evaluation interval
LOOKBACK = "1m"
GRACE = 600  # an alert firing this long after its incident ended still caught it
# Families of which every row of the answer has one series (rows are counted for
# datadog_exporter_answer_rows): an insight is a failure set or a certificate.
ROW_FAMILIES = {
    "connections": ("datadog_cnm_client_sent_packets",),
    "dns": ("datadog_dns_requests",),
    "network_health": (
        "datadog_network_health_requests",
        "datadog_network_health_certificate_expiry_seconds",
    ),
}
# Alert groups the goals are about; the exporter group measures the exporter's own truth.
USER_GROUPS = ("network", "dns", "cases", "network-health")
KEYS = {"api_key": "fortnight-api-key-0123456789abcdef", "app_key": "fortnight-app-key-0123456789"}
MARK_START = "<!-- measured-alert-quality:start (generated by tests/alerting/harness.py) -->"
MARK_END = "<!-- measured-alert-quality:end -->"


@dataclass(frozen=True)
class Rule:
    name: str
    group: str
    expr: str
    hold: int
    interval: int


@dataclass(frozen=True)
class Episode:
    """One label set of one alert, from pending to resolved (end None: still firing)."""

    alert: str
    labels: dict[str, str]
    active: int
    fired: int
    end: int


@dataclass
class AlertScore:
    rule: Rule | None
    expected: list[Incident] = field(default_factory=list)
    delays: list[int] = field(default_factory=list)
    missed: list[Incident] = field(default_factory=list)
    false: list[Episode] = field(default_factory=list)
    during_datadog_faults: list[Episode] = field(default_factory=list)


@dataclass
class Report:
    scores: dict[str, AlertScore]
    weeks: float
    seconds: float

    def table(self) -> str:
        lines = [
            "| alert | group | caught / expected | false firings per week | "
            "delay from start to firing (median / worst) |",
            "|---|---|---|---|---|",
        ]
        for name, score in self.scores.items():
            group = score.rule.group if score.rule else "(no such rule)"
            expected = len(score.expected)
            caught = expected - len(score.missed)
            delays = (
                f"{_minutes(statistics.median(score.delays))} / {_minutes(max(score.delays))}"
                if score.delays
                else "-"
            )
            rate = len(score.false) / self.weeks
            lines.append(f"| {name} | {group} | {caught} / {expected} | {rate:.1f} | {delays} |")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            name: {
                "group": s.rule.group if s.rule else None,
                "expected": [i.name for i in s.expected],
                "missed": [i.name for i in s.missed],
                "delays": s.delays,
                "false": [(e.labels, e.fired) for e in s.false],
                "during_datadog_faults": [(e.labels, e.fired) for e in s.during_datadog_faults],
            }
            for name, s in self.scores.items()
        }


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def load_rules(rules_dir: Path) -> list[Rule]:
    document = yaml.safe_load((rules_dir / "alerting.yml").read_text())
    rules = []
    for group in document["groups"]:
        short = group["name"].rsplit(".", 1)[-1]
        interval = _seconds(group.get("interval", f"{INTERVAL}s"))
        for rule in group["rules"]:
            if "alert" in rule:
                hold = _seconds(rule.get("for", "0s"))
                rules.append(Rule(rule["alert"], short, rule["expr"], hold, interval))
    return rules


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", text))


# --- processes ----------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _process(command: list[str], log: Path, ready: str | None = None) -> Iterator[str]:
    """Run ``command`` until the block ends; wait for ``ready`` (a regex) in its output."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        found = ""
        if ready is not None:
            deadline = time.monotonic() + 60
            while not (match := re.search(ready, log.read_text(errors="replace"))):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start:\n{log.read_text()}")
                time.sleep(0.1)
            found = match.group(1)
        yield found
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def _prometheus(work: Path, data: Path) -> Iterator[str]:
    port = _free_port()
    config = work / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n")
    command = [
        _tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=100y",
        f"--web.listen-address=127.0.0.1:{port}",
        "--query.max-samples=200000000",
        # A backfill cannot write staleness markers: a series that leaves the answer would
        # linger for the default 5m lookback. Live, the next scrape marks it stale within
        # one scrape interval; a 1m lookback (the sample interval) behaves the same here.
        f"--query.lookback-delta={LOOKBACK}",
    ]
    with _process(command, work / f"prometheus-{port}.log"):
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (apt-get install prometheus)")
    return path


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


# --- building the TSDB --------------------------------------------------------------------


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def needed_recording_rules(rules_dir: Path) -> list[dict[str, Any]]:
    """recording.yml's groups with only the rules the alerts read (directly or through
    another recording rule): the others are work whose series no alert looks at."""
    alerting = yaml.safe_load((rules_dir / "alerting.yml").read_text())["groups"]
    groups: list[dict[str, Any]] = yaml.safe_load((rules_dir / "recording.yml").read_text())[
        "groups"
    ]
    read = {name for g in alerting for r in g["rules"] for name in _NAME.findall(r["expr"])}
    rules = [r for g in groups for r in g["rules"]]
    while True:
        more = {n for r in rules if r["record"] in read for n in _NAME.findall(r["expr"])}
        if more <= read:
            break
        read |= more
    kept = [{**g, "rules": [r for r in g["rules"] if r["record"] in read]} for g in groups]
    return [g for g in kept if g["rules"]]


def rule_families(rules_dir: Path) -> list[str]:
    """The backfilled families the alerts and the recording rules they need read (and the
    ones the harness counts rows of): the rest would only cost backfill, promtool and disk
    time."""
    written = data_metric_names() | {WINDOW_FAMILY.name}
    names = {name for families in ROW_FAMILIES.values() for name in families}
    rules = [r for g in yaml.safe_load((rules_dir / "alerting.yml").read_text())["groups"]
             for r in g["rules"]]  # fmt: skip
    rules += [r for g in needed_recording_rules(rules_dir) for r in g["rules"]]
    for rule in rules:
        names.update(_NAME.findall(rule["expr"]))
    return sorted(names & written)


def harness_config(work: Path) -> Path:
    """The shipped configuration with the harness's network_health query, in ``work``."""
    config = yaml.safe_load(CONFIG.read_text())
    config["network_health"] = [NETWORK_HEALTH_QUERY]
    path = work / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.contextmanager
def backfill(fortnight: Fortnight, work: Path, families: Sequence[str]) -> Iterator[Iterator[Path]]:
    """The project's own backfill of the history queries, against the simulator: yields the
    day files as the backfill completes them (it writes each under another name and renames
    it when complete), so that promtool can build blocks while later days are fetched."""
    out = work / "backfill"
    command = [
        sys.executable, "-m", "simulator", "--listen", "127.0.0.1:0",
        "--api-key", KEYS["api_key"], "--app-key", KEYS["app_key"], "--seed", str(fortnight.seed),
        "--fortnight", str(fortnight.start), "--rate-limit", "1000000",
    ]  # fmt: skip
    with _process(command, work / "simulator.log", r"listening on (http://\S+)") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
        env.update(DD_API_URL=url, DD_API_KEY=KEYS["api_key"], DD_APP_KEY=KEYS["app_key"])
        queries = [arg for c, name in HISTORY_QUERIES for arg in ("--query", f"{c}/{name}")]
        config = harness_config(work)
        log = work / "backfill.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "exporter", "backfill", f"--config.file={config}",
                    f"--start={fortnight.start}", f"--end={fortnight.end}", f"--output={out}",
                    f"--label=job={JOB}", f"--label=instance={INSTANCE}", "--log.level=warn",
                    *queries, *(f"--family={name}" for name in families),
                ],
                env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            )  # fmt: skip

        def files() -> Iterator[Path]:
            taken: set[Path] = set()
            deadline = time.monotonic() + 3600
            while True:
                finished = process.poll() is not None
                for path in sorted(set(out.glob("*.om")) - taken):
                    taken.add(path)
                    yield path
                if finished:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the backfill took more than an hour")
                time.sleep(0.5)
            if process.returncode != 0:
                raise RuntimeError(f"the backfill failed:\n{log.read_text()[-3000:]}")

        try:
            yield files()
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(30)


def _fault_spans(fortnight: Fortnight) -> list[tuple[int, int]]:
    return [(i.start, i.end) for i in fortnight.incidents if i.side == "datadog"]


def _in_spans(t: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(a <= t < b for a, b in spans)


_TIMESTAMP = re.compile(rb" (\d+)\n?$")


def remove_fault_spans(path: Path, spans: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Drop the samples polls during a Datadog-side fault would not have had; return the
    number of rows of the query's answer at every timestamp kept."""
    collector = path.name.split("-", 1)[0]
    row_families = tuple(name.encode() + b"{" for name in ROW_FAMILIES[collector])
    rows: dict[int, int] = defaultdict(int)
    kept = path.with_suffix(".kept")
    with path.open("rb") as src, kept.open("wb") as dst:
        for line in src:
            if line.startswith(b"#"):
                dst.write(line)
                continue
            match = _TIMESTAMP.search(line)
            assert match, line
            t = int(match.group(1))
            if _in_spans(t, spans):
                continue
            if line.startswith(row_families):
                rows[t] += 1
            dst.write(line)
    kept.replace(path)
    return rows


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    merged = {"job": JOB, "instance": INSTANCE, **labels}
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in merged.items()) + "}"


def exporter_view(fortnight: Fortnight, rows: dict[tuple[str, str], dict[int, int]]) -> str:
    """OpenMetrics text of what the live exporter would have shown beside the data: cases
    and self-metrics, one sample per poll (every INTERVAL seconds)."""
    times = range(fortnight.start, fortnight.end, INTERVAL)
    faults = [i for i in fortnight.incidents if i.side == "datadog"]
    drops = [i for i in fortnight.incidents if i.side == "exporter"]
    queries = [*HISTORY_QUERIES, ("cases", CASES_QUERY)]
    endpoint = {c: c for c, _ in queries}
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")

    def fault_at(t: int) -> Incident | None:
        # Case Management is another endpoint: the simulated faults hit the CNM ones
        # (connections, DNS and Network Health Insights).
        return next((f for f in faults if f.start <= t < f.end), None)

    family("up", "gauge", "Whether the scrape succeeded.")
    out.extend(f"up{_labels()} 1 {t}\n" for t in times)
    family("datadog_exporter_interval_seconds", "gauge", "Polling interval.")
    for collector, query in queries:
        labels = _labels(collector=collector, query=query)
        out.extend(f"datadog_exporter_interval_seconds{labels} {INTERVAL} {t}\n" for t in times)
    family("datadog_exporter_up", "gauge", "Whether the last poll succeeded.")
    for collector, query in queries:
        labels = _labels(collector=collector, query=query)
        for t in times:
            up = 0 if collector != "cases" and fault_at(t) else 1
            out.append(f"datadog_exporter_up{labels} {up} {t}\n")
    family("datadog_exporter_last_success_timestamp_seconds", "gauge", "Last success.")
    for collector, query in queries:
        labels = _labels(collector=collector, query=query)
        last = 0
        for t in times:
            if collector == "cases" or not fault_at(t):
                last = t
            if last:
                out.append(f"datadog_exporter_last_success_timestamp_seconds{labels} {last} {t}\n")
    family("datadog_exporter_answer_rows", "gauge", "Rows in the last successful answer.")
    for collector, query in queries:
        labels = _labels(collector=collector, query=query)
        held = 0
        for t in times:
            if collector == "cases":
                held = sum(1 for n in fortnight.open_cases(t).values() if n)
            elif not fault_at(t):
                held = rows[(collector, query)].get(t, 0)
            out.append(f"datadog_exporter_answer_rows{labels} {held} {t}\n")
    family("datadog_exporter_dropped_rows", "counter", "Rows dropped by max_series.")
    for collector, query in queries:
        labels = _labels(collector=collector, query=query)
        total = 0
        for t in times:
            for drop in drops:
                if drop.start <= t < drop.end and drop.labels.get("query") == query:
                    total += int(drop.detail["rows"])
            out.append(f"datadog_exporter_dropped_rows_total{labels} {total} {t}\n")
    family("datadog_exporter_api_requests", "counter", "API requests by status code.")
    for api, _ in queries:
        counts: dict[str, int] = defaultdict(int)
        series: dict[str, list[str]] = defaultdict(list)
        for t in times:
            fault = fault_at(t) if api != "cases" else None
            code = fault.detail["status"] if fault else "200"
            # a 5xx poll is retried (three attempts); a 429 is asked once and waited out
            counts[code] += 3 if code.startswith("5") else 1
            for seen in sorted(counts):
                series[seen].append(f"{counts[seen]} {t}")
        for code, points in series.items():
            labels = _labels(endpoint=endpoint[api], code=code)
            out.extend(f"datadog_exporter_api_requests_total{labels} {p}\n" for p in points)
    family("datadog_cases", "gauge", "Cases in the group.")
    for priority in ("P1", "P2", "P3"):
        labels = _labels(query=CASES_QUERY, priority=priority)
        for t in times:
            count = fortnight.open_cases(t)[priority]
            if count:
                out.append(f"datadog_cases{labels} {count} {t}\n")
    out.append("# EOF\n")
    return "".join(out)


# promtool's openmetrics import reads its whole input once per block it writes: with the
# default 2h blocks a day file is read 12 times. Larger blocks (promtool rounds this down to
# 54h, a compaction range of Prometheus) read a day file once or twice; the samples, and so
# every query on them, are the same.
MAX_BLOCK = "72h"


def _blocks(promtool: str, path: Path, data: Path) -> None:
    _run(
        [
            promtool, "tsdb", "create-blocks-from", "openmetrics",
            f"--max-block-duration={MAX_BLOCK}", str(path), str(data),
        ],
        timeout=1800,
    )  # fmt: skip


def build_tsdb(fortnight: Fortnight, work: Path, rules_dir: Path = RULES_DIR) -> Path:
    """The backfilled data and the exporter's view of the fortnight, as blocks in work/data."""
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    promtool = _tool("promtool")
    spans = _fault_spans(fortnight)
    rows: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)

    def convert(path: Path) -> tuple[tuple[str, str], dict[int, int]]:
        collector = path.name.split("-", 1)[0]
        query = next(q for c, q in HISTORY_QUERIES if c == collector)
        counted = remove_fault_spans(path, spans)
        _blocks(promtool, path, data)
        path.unlink()
        return (collector, query), counted

    # One promtool per core, each day file as soon as the backfill has written it: each
    # promtool writes its own blocks (distinct ULIDs) into `data`.
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool,
        backfill(fortnight, work, rule_families(rules_dir)) as files,
    ):
        converted = [pool.submit(convert, path) for path in files]
        for future in converted:
            key, counted = future.result()
            rows[key].update(counted)
    view = work / "exporter-view.om"
    view.write_text(exporter_view(fortnight, rows))
    _blocks(promtool, view, data)
    (work / "blocks-done").touch()
    return data


def add_recording_blocks(fortnight: Fortnight, rules_dir: Path, work: Path) -> Path:
    """Backfill the recording rules the alerts need over the range into ``work/data``."""
    data = work / "data"
    promtool = _tool("promtool")
    # promtool evaluates one rule after the other while Prometheus answers queries side by
    # side: a promtool per rule (no needed rule reads another), one per core at a time.
    rules = [{**g, "rules": [r]} for g in needed_recording_rules(rules_dir) for r in g["rules"]]
    # The baselines (a group interval of their own, windows of days) cost most: first.
    rules.sort(key=lambda group: "interval" not in group)
    with _prometheus(work, data) as url:

        def backfill_rule(n: int) -> Path:
            rules_file, blocks = work / f"recording-{n}.yml", work / f"rule-blocks-{n}"
            rules_file.write_text(yaml.safe_dump({"groups": [rules[n]]}, sort_keys=False))
            shutil.rmtree(blocks, ignore_errors=True)
            _run(
                [
                    promtool, "tsdb", "create-blocks-from", "rules",
                    f"--start={fortnight.start}", f"--end={fortnight.end}", f"--url={url}",
                    f"--output-dir={blocks}", f"--eval-interval={INTERVAL}s", str(rules_file),
                ],
                timeout=3600,
            )  # fmt: skip
            return blocks

        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            outputs = list(pool.map(backfill_rule, range(len(rules))))
    for blocks in outputs:
        for block in blocks.iterdir():
            if (block / "meta.json").exists():
                shutil.move(str(block), str(data / block.name))
    (work / "rules-done").touch()
    return data


# --- evaluating the alerts ----------------------------------------------------------------


def _query_range(url: str, expr: str, start: int, end: int, step: int) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode(
        {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
    )
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{query}", timeout=600) as response:
        document = json.load(response)
    if document["status"] != "success":
        raise RuntimeError(f"{expr}: {document}")
    result: list[dict[str, Any]] = document["data"]["result"]
    return result


def evaluate(url: str, rule: Rule, start: int, end: int) -> list[Episode]:
    """The rule's firing episodes over [start, end), ``for`` applied as Prometheus does."""
    present: dict[frozenset[tuple[str, str]], set[int]] = defaultdict(set)
    chunk = rule.interval * 1440
    for low in range(start, end, chunk):
        high = min(end, low + chunk) - rule.interval
        for item in _query_range(url, rule.expr, low, high, rule.interval):
            labels = frozenset(item["metric"].items())
            present[labels].update(int(t) for t, _ in item["values"])
    return apply_for(rule, present, start, end)


def apply_for(
    rule: Rule, present: dict[frozenset[tuple[str, str]], set[int]], start: int, end: int
) -> list[Episode]:
    """Firing episodes from the steps at which each label set was returned (pure).

    As Prometheus' rule manager: a label set is pending from the first evaluation that
    returns it, fires at the first evaluation at least ``for`` after that (at once with
    ``for: 0``), and any evaluation without it resets it."""
    episodes = []
    steps = range(start, end, rule.interval)
    for labels, times in present.items():
        active: int | None = None
        fired: int | None = None
        for t in steps:
            if t in times:
                if active is None:
                    active = t
                if fired is None and t - active >= rule.hold:
                    fired = t
            elif active is not None:
                if fired is not None:
                    episodes.append(Episode(rule.name, dict(labels), active, fired, t))
                active = fired = None
        if fired is not None and active is not None:
            episodes.append(Episode(rule.name, dict(labels), active, fired, end))
    return sorted(episodes, key=lambda e: e.fired)


def _matches(episode: Episode, incident: Incident) -> bool:
    return incident.labels.items() <= episode.labels.items()


def score(
    fortnight: Fortnight, rules: list[Rule], episodes: list[Episode], seconds: float
) -> Report:
    names = [r.name for r in rules]
    for incident in fortnight.incidents:
        names.extend(a for a in incident.alerts if a not in names)
    by_name = {r.name: r for r in rules}
    scores = {name: AlertScore(by_name.get(name)) for name in names}
    for incident in fortnight.incidents:
        for alert in incident.alerts:
            scores[alert].expected.append(incident)
            hits = [
                e
                for e in episodes
                if e.alert == alert
                and incident.start <= e.fired <= incident.end + GRACE
                and _matches(e, incident)
            ]
            if hits:
                scores[alert].delays.append(hits[0].fired - incident.start)
            else:
                scores[alert].missed.append(incident)
    for episode in episodes:
        explained = any(
            (episode.alert in i.alerts and _matches(episode, i)) or episode.alert in i.allowed
            for i in fortnight.incidents
            if episode.active <= i.end + GRACE and episode.end >= i.start
        )
        if explained:
            continue
        scores[episode.alert].false.append(episode)
        if any(
            i.side == "datadog" and episode.active <= i.end + GRACE and episode.end >= i.start
            for i in fortnight.incidents
        ):
            scores[episode.alert].during_datadog_faults.append(episode)
    weeks = (fortnight.end - fortnight.start) / (7 * DAY)
    return Report(scores, weeks, seconds)


def measure(
    rules_dir: Path = RULES_DIR, work: Path | None = None, *, reuse: bool = False
) -> Report:
    """Build the TSDB in ``work`` (a temporary directory by default) and score the alerts.

    ``reuse``: keep the stages an earlier run completed in ``work`` (the data blocks;
    the recording-rule blocks), valid while the fortnight, the configuration and
    recording.yml are unchanged."""
    began = time.monotonic()
    fortnight = build_fortnight(SEED, START)
    rules = load_rules(rules_dir)
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="alert-quality-")))
        if not (reuse and (work / "blocks-done").exists()):
            build_tsdb(fortnight, work, rules_dir)
        if not (reuse and (work / "rules-done").exists()):
            add_recording_blocks(fortnight, rules_dir, work)
        data = work / "data"
        episodes: list[Episode] = []
        # Prometheus answers queries side by side: one rule per core at a time.
        with (
            _prometheus(work, data) as url,
            concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool,
        ):
            for found in pool.map(
                lambda rule: evaluate(url, rule, fortnight.start, fortnight.end), rules
            ):
                episodes.extend(found)
        return score(fortnight, rules, episodes, time.monotonic() - began)


def docs_section(report: Report) -> str:
    return f"{MARK_START}\n{report.table()}\n{MARK_END}"


def current_docs_table() -> str | None:
    text = DOCS.read_text() if DOCS.exists() else ""
    match = re.search(re.escape(MARK_START) + r".*?" + re.escape(MARK_END), text, re.DOTALL)
    return match.group(0) if match else None


def write_docs(report: Report) -> None:
    text = DOCS.read_text()
    section = docs_section(report)
    if current_docs_table() is None:
        raise RuntimeError(f"{DOCS} has no {MARK_START!r} ... {MARK_END!r} section")
    pattern = re.escape(MARK_START) + r".*?" + re.escape(MARK_END)
    DOCS.write_text(re.sub(pattern, lambda _: section, text, flags=re.DOTALL))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.alerting.harness")
    parser.add_argument(
        "--rules", type=Path, default=RULES_DIR, help="directory of alerting.yml and recording.yml"
    )
    parser.add_argument(
        "--work", type=Path, help="keep the TSDB and logs here (an empty directory)"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="evaluate on the TSDB an earlier run left in --work (same recording rules)",
    )
    parser.add_argument("--json", type=Path, help="also write the per-alert details here")
    parser.add_argument("--write-docs", action="store_true", help="update docs/alerting.md")
    args = parser.parse_args(argv)
    if args.reuse and args.work is None:
        parser.error("--reuse needs --work")
    report = measure(args.rules, args.work, reuse=args.reuse)
    print(report.table())
    print(f"measured in {report.seconds:.0f}s", file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps(report.as_json(), indent=1, ensure_ascii=False, default=str)
        )
    if args.write_docs:
        write_docs(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
