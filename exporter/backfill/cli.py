"""``datadog-cnm-exporter backfill``: flags, the plan printed first, the summary, exit codes
(:data:`EXIT_CODES`).

Each failure of the backfill itself is one ``error:`` line on stderr, never a traceback (what
nobody foresaw reaches the CLI's last-resort handler). Arguments are all checked before
anything is written: a usage error leaves the output directory as it was, so the corrected
command can run in it.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import re
import resource
import shlex
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from ..catalog import data_metric_names
from ..clock import SYSTEM_CLOCK, Clock
from ..config.errors import ConfigError
from ..config.schema import Config, load_config
from ..datadog.credentials import CredentialsError
from ..durations import parse_duration
from ..flags import ExitCode, HelpFormatter, epilog, wrap
from ..logs import Redactor, setup_logging
from ..logs import add_flags as add_log_flags
from .grid import Lane, grid, projection, rate_summary, runs
from .journal import Journal, JournalMismatch
from .openmetrics import target_labels
from .progress import Console
from .run import Outcome, Runner, Target
from .source import (
    WINDOW_FAMILY,
    HistoryQuery,
    WindowSource,
    sections,
    select_queries,
    spoken,
)
from .timespec import DEFAULT_END_AGO_SECONDS, RETENTION_SECONDS, parse_time

log = logging.getLogger("exporter.backfill")

PROG = "datadog-cnm-exporter backfill"
EXIT_CONFIG = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_OUTPUT = 4
EXIT_INTERRUPTED = 130
# What --help lists below the flags, and the command-line reference too.
EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(0, "Every window was written."),
    ExitCode(
        EXIT_CONFIG,
        "An invalid configuration, missing or refused keys, an output directory holding a "
        "run with other arguments; or an internal error (a bug: the traceback only at "
        "--log.level debug).",
    ),
    ExitCode(
        EXIT_USAGE,
        "Bad command-line usage (checked before anything is written to --output).",
    ),
    ExitCode(
        EXIT_INCOMPLETE,
        "Windows failed after retries: they are listed, with the command that retries them.",
    ),
    ExitCode(
        EXIT_OUTPUT,
        "The output cannot be written (a full disk, a read-only file system, no permission, "
        "--output is a file): what is recorded is kept; make room and rerun the same command.",
    ),
    ExitCode(EXIT_INTERRUPTED, "Interrupted: rerun the same command to continue."),
)
DEFAULT_OUTPUT = "backfill"
DEFAULT_LABELS = (("job", "datadog-cnm-exporter"),)
JOURNAL = Path(".backfill") / "journal.sqlite"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class UsageError(Exception):
    pass


class OutputError(Exception):
    """The output directory (or, for ``--output -``, the spool) cannot be written."""


# What a file system says when it cannot take a write (sqlite says it in its own words).
_DISK_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EIO,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
    }
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=wrap(
            f"Fetch Datadog's CNM history of the {spoken(sections(history=True), 'and')} "
            "queries of a configuration and write it as OpenMetrics files for `promtool tsdb "
            "create-blocks-from openmetrics`. Rerun the same command to continue an "
            "interrupted run. Keys and site come from DD_* as for the exporter."
        ),
        epilog=epilog((), EXIT_CODES),
        formatter_class=HelpFormatter,
        # Flags match exactly, as in Prometheus' tools: no abbreviations.
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        required=True,
        metavar="PATH",
        help="the exporter's YAML configuration",
    )
    parser.add_argument(
        "--start",
        required=True,
        metavar="TIME",
        help="RFC 3339 (2024-05-01T00:00:00Z; an offset is required), Unix seconds, or a "
        "duration meaning that long ago (14d, 36h); before Datadog's retention of about 14 days "
        "is a warning (those windows come back empty), not an error",
    )
    parser.add_argument(
        "--end",
        metavar="TIME",
        help="as --start (default: 3h ago, which keeps the blocks out of a running Prometheus' "
        "head block, as promtool tsdb create-blocks-from rules does)",
    )
    parser.add_argument(
        "--step",
        metavar="DURATION",
        help="time between samples, whole seconds; samples sit on the multiples of the step in "
        "[start, end] (default: each query's interval)",
    )
    parser.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="NAME",
        help="backfill only this query, NAME or COLLECTOR/NAME (default: every "
        f"{spoken(sections(history=True), 'and')} query); repeatable",
    )
    parser.add_argument(
        "--family",
        action="append",
        default=[],
        metavar="NAME",
        help="write only this metric family, e.g. the ones your rules read (default: every "
        "family the queries' collectors serve); datadog_exporter_window_seconds, which the "
        "per-second recording rules divide by, is a family like any other: list it too if you "
        "need it. Fewer series make the files, promtool's memory and its run time smaller; "
        "repeatable",
    )
    parser.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="DIR|-",
        help="directory for one file per query and UTC day (COLLECTOR-QUERY-YYYY-MM-DD.om), or - "
        "for one stream on stdout (small runs; not resumable)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a target label Prometheus adds when it scrapes the exporter (job, instance): with "
        "the same values the backfilled series are the live series (default "
        f"{' '.join(f'{k}={v}' for k, v in DEFAULT_LABELS)}); repeatable",
    )
    add_log_flags(parser, format_help="progress and events as logfmt lines or JSON objects")
    return parser


def parse_labels(specs: Sequence[str]) -> list[tuple[str, str]]:
    labels = dict(DEFAULT_LABELS)
    given: set[str] = set()
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise UsageError(f"--label {spec!r}: expected NAME=VALUE with a valid label name")
        if name in given:
            raise UsageError(f"--label {name} given twice")
        given.add(name)
        labels[name] = value
    return sorted(labels.items())


def parse_step(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--step: {exc}") from None
    if seconds < 1 or seconds != int(seconds):
        raise UsageError(f"--step {text!r}: must be a whole number of seconds, at least 1s")
    return int(seconds)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(
    argv: Sequence[str],
    redactor: Redactor,
    environ: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Run a backfill; ``redactor`` is shared with the caller's last-resort handler, which
    turns whatever else is raised into one ``error:`` line. ``environ`` is the command line's
    snapshot of the environment (keys, site, proxies). ``clock`` says what time it is (the
    relative --start/--end) and is what every wait runs on."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format, redactor)
    console = Console(args.log_format == "json")
    try:
        return _main(args, list(argv), redactor, console, clock, environ=environ)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, CredentialsError, JournalMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_OUTPUT


@contextmanager
def writing_to(where: str) -> Iterator[None]:
    """A write the disk refuses (full, read-only, no permission) becomes an OutputError
    naming ``where``; every window's record is one transaction, so what is recorded stays."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        if isinstance(exc, OSError) and exc.errno not in _DISK_ERRNOS:
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(
            f"cannot write {where}: {reason}; windows recorded so far are kept: make room or "
            "fix the directory, then rerun the same command"
        ) from None


def open_output(output: Path) -> Journal:
    """The output directory, created if need be, and its journal."""
    if output.exists() and not output.is_dir():
        raise OutputError(f"--output {output}: not a directory (a file of that name exists)")
    with writing_to(f"--output {output}"):
        output.mkdir(parents=True, exist_ok=True)
        for partial in output.glob("*.partial"):
            partial.unlink()  # an interrupted day file: rebuilt from the journal
        return Journal(output / JOURNAL)


@dataclass(frozen=True)
class Plan:
    """What the arguments ask for, all checked before anything is written."""

    config: Config
    labels: list[tuple[str, str]]
    step: int | None
    start: float
    end: float
    queries: list[HistoryQuery]
    families: frozenset[str] | None  # None: every family


def _main(
    args: argparse.Namespace,
    argv: list[str],
    redactor: Redactor,
    console: Console,
    clock: Clock,
    *,
    environ: Mapping[str, str],
) -> int:
    now = clock.wall()
    plan = _plan(args, console, now)
    output = None if args.output == "-" else Path(args.output)
    with ExitStack() as stack:
        journal = _open_journal(stack, output)
        run = journal.bind_run(
            {
                "arg_start": args.start,
                "arg_end": args.end or "",
                "arg_step": args.step or "",
                "arg_labels": [f"{k}={v}" for k, v in plan.labels],
                # Only when given, so that journals of runs without it still resume.
                **({"arg_families": sorted(plan.families)} if plan.families else {}),
                "start": plan.start,
                "end": plan.end,
            }
        )
        # A resumed run keeps the times its first run resolved (checked then, as above).
        start, end = float(run["start"]), float(run["end"])  # type: ignore[arg-type]
        _warn_about_times(start, end, now)
        targets = [
            Target(
                query,
                journal.bind_query(query.collector, query.name, query.fingerprint),
                grid(start, end, plan.step or max(1, round(query.interval))),
            )
            for query in plan.queries
        ]
        source = WindowSource(plan.config, redactor, clock=clock, environ=environ)
        bar = not console.json_logs and sys.stderr.isatty()
        runner = Runner(
            targets,
            source,
            journal,
            output,
            labels=target_labels(plan.labels),
            families=plan.families,
            console=console,
            bar=bar,
        )
        already = runner.prepare()
        _print_plan(
            console,
            plan.config,
            targets=targets,
            start=start,
            end=end,
            already=already,
            total=runner.outcome.total,
        )
        cpu = time.process_time()
        with logging_redirect_tqdm() if bar else ExitStack():
            outcome = asyncio.run(_run(runner, source))
        if output is None and not (outcome.interrupted or outcome.fatal):
            runner.stream_out(sys.stdout.buffer)
            sys.stdout.buffer.flush()
        elif outcome.complete:
            journal.vacuum()
        cpu = time.process_time() - cpu
        return _summarize(console, outcome, argv=argv, output=output, cpu=cpu, source=source)
    raise AssertionError("unreachable")


def _plan(args: argparse.Namespace, console: Console, now: float) -> Plan:
    """The configuration, times, labels and queries of the arguments; UsageError for any
    that cannot run. Checked before the journal records the arguments: a refused command
    must not bind the output directory to arguments that were never run."""
    config = load_config(args.config_file)
    labels = parse_labels(args.label)
    step = parse_step(args.step)
    try:
        start = parse_time(args.start, now)
        end = parse_time(args.end, now) if args.end else now - DEFAULT_END_AGO_SECONDS
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    selection = select_queries(config, args.query)
    if selection.unknown:
        names = ", ".join(f"{q.collector}/{q.name}" for q in select_queries(config, []).queries)
        raise UsageError(
            f"--query {', '.join(selection.unknown)}: no such query (queries with history: "
            f"{names or 'none'})"
        )
    if selection.no_history:
        console.say(
            f"{spoken(sections(history=False), 'and')} queries answer only for now (Datadog "
            "keeps no history of them); skipped: "
            + ", ".join(f"{c}/{n}" for c, n in selection.no_history),
            skipped=",".join(f"{c}/{n}" for c, n in selection.no_history),
        )
    if not selection.queries:
        raise UsageError(
            "nothing to backfill: the configuration has no "
            f"{spoken(sections(history=True), 'or')} query"
        )
    if start >= end:
        raise UsageError(f"--start ({iso(start)}) must be before --end ({iso(end)})")
    for query in selection.queries:
        clash = sorted({name for name, _ in labels} & {*query.label_names, "collector"})
        if clash:
            raise UsageError(
                f"--label {', '.join(clash)}: {query.collector} query {query.name!r} has a label "
                "of that name already (Prometheus would rename it exported_*); pick another"
            )
    return Plan(config, labels, step, start, end, selection.queries, _families(args.family))


def _families(names: Sequence[str]) -> frozenset[str] | None:
    """The --family names (None: all); a name that is not a metric name is a usage error, one
    the exporter does not declare a warning (DNS keys Datadog adds later get derived names)."""
    if not names:
        return None
    bad = [name for name in names if not _METRIC_NAME.fullmatch(name)]
    if bad:
        raise UsageError(f"--family {', '.join(bad)}: not a metric family name")
    unknown = sorted(set(names) - data_metric_names() - {WINDOW_FAMILY.name})
    if unknown:
        log.warning(
            "--family names a family the exporter does not declare; only a DNS key Datadog "
            "added later could fill it",
            extra={"families": ",".join(unknown)},
        )
    return frozenset(names)


def _open_journal(stack: ExitStack, output: Path | None) -> Journal:
    """The run's journal: in ``output``, or for stdout in a spool that ``stack`` removes."""
    # Outermost, so that closing the journal on a full disk is one error line too.
    stack.enter_context(
        writing_to(
            "the spool (in the temporary directory)" if output is None else f"--output {output}"
        )
    )
    if output is None:
        spool = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="backfill-")))
        journal = Journal(spool / "journal.sqlite")
    else:
        journal = open_output(output)
    stack.callback(journal.close)
    return journal


def _warn_about_times(start: float, end: float, now: float) -> None:
    if start < now - RETENTION_SECONDS:
        log.warning(
            "--start lies before Datadog's retention (about 14 days): windows older than "
            "that are likely to come back empty",
            extra={"start": iso(start), "retention_start": iso(now - RETENTION_SECONDS)},
        )
    if end > now - DEFAULT_END_AGO_SECONDS:
        log.warning(
            "--end lies within the last 3 hours: the blocks may overlap a running "
            "Prometheus' head block",
            extra={"end": iso(end)},
        )


async def _run(runner: Runner, source: WindowSource) -> Outcome:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await runner.run(stop)
    finally:
        await source.close()


def _print_plan(
    console: Console,
    config: Config,
    *,
    targets: list[Target],
    start: float,
    end: float,
    already: int,
    total: int,
) -> None:
    console.say(
        f"backfill {iso(start)} .. {iso(end)}: {len(targets)} queries, {total:,} windows"
        + (f", {already:,} already recorded (resuming)" if already else ""),
        start=iso(start),
        end=iso(end),
        queries=len(targets),
        windows=total,
        already_recorded=already,
    )
    per_query = [(f"{t.query.collector}/{t.query.name}", t.step, len(t.pending)) for t in targets]
    calls: dict[tuple[str, str], int] = {}
    for t in targets:
        key = (t.query.account, t.query.endpoint)
        calls[key] = calls.get(key, 0) + len(t.pending)
    lanes = []
    for (account, endpoint), count in sorted(calls.items()):
        expected = config.datadog.rate_limits.get(endpoint)
        lanes.append(
            Lane(
                account,
                endpoint,
                count,
                expected.limit if expected else None,
                expected.period if expected else None,
            )
        )
    for line in projection(per_query, lanes):
        console.say(line)


def _summarize(
    console: Console,
    outcome: Outcome,
    *,
    argv: list[str],
    output: Path | None,
    cpu: float,
    source: WindowSource,
) -> int:
    stats = source.stats
    for (account, endpoint), calls in sorted(outcome.lane_calls.items()):
        state = source.client(account).rate_limits.limits(endpoint)
        # Periods that ended during the run, the first left out (it may have begun before).
        whole = outcome.lane_periods.get((account, endpoint), [])[1:]
        text, fields = rate_summary(calls, outcome.elapsed, state.limit, state.period, whole)
        console.say(f"{endpoint} ({account}): {text}", account=account, endpoint=endpoint, **fields)
    per_window = cpu / outcome.fetched * 1000 if outcome.fetched else 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    console.say(
        f"{outcome.fetched:,} windows fetched, {stats.rate_limited} answered 429, "
        f"{stats.pauses} waits for the rate limit; CPU {cpu:.1f}s "
        f"({per_window:.1f} ms per window); peak memory {peak:.0f} MiB"
        + (
            f"; {outcome.dropped_rows:,} rows dropped by max_series" if outcome.dropped_rows else ""
        ),
        fetched=outcome.fetched,
        http_429=stats.rate_limited,
        rate_limit_pauses=stats.pauses,
        paused_seconds=round(stats.paused_seconds, 1),
        cpu_seconds=round(cpu, 2),
        cpu_ms_per_window=round(per_window, 2),
        peak_rss_mib=round(peak),
        dropped_rows=outcome.dropped_rows,
    )
    if outcome.fatal:
        print(f"error: {outcome.fatal}", file=sys.stderr)
        return EXIT_CONFIG
    if outcome.interrupted:
        console.say(
            f"interrupted: {outcome.done:,} of {outcome.total:,} windows recorded; rerun the same "
            "command to continue",
            windows_done=outcome.done,
            windows_total=outcome.total,
        )
        return EXIT_INTERRUPTED
    if outcome.failures:
        _report_failures(console, outcome, argv, output)
        return EXIT_INCOMPLETE
    where = "stdout" if output is None else str(output)
    console.say(
        f"complete: {outcome.total:,} windows, {len(outcome.files)} files written now, "
        f"{outcome.samples:,} samples, in {where}",
        windows=outcome.total,
        files=len(outcome.files),
        samples=outcome.samples,
        output=where,
    )
    return 0


def _report_failures(
    console: Console, outcome: Outcome, argv: list[str], output: Path | None
) -> None:
    by_query: dict[int, list[int]] = {}
    reasons: dict[tuple[int, int], str] = {}
    queries: dict[int, HistoryQuery] = {}
    steps: dict[int, int] = {}
    for failure in outcome.failures:
        ref = failure.target.ref.id
        by_query.setdefault(ref, []).append(failure.t)
        reasons[(ref, failure.t)] = f"{failure.reason}: {failure.message}"
        queries[ref] = failure.target.query
        steps[ref] = failure.target.step
    console.say(
        f"{len(outcome.failures):,} windows failed after retries (their days are not written):",
        failed=len(outcome.failures),
    )
    commands = []
    for ref, points in by_query.items():
        query = queries[ref]
        for first, last in runs(sorted(points), steps[ref]):
            count = (last - first) // steps[ref] + 1
            console.say(
                f"  {query.collector}/{query.name} {iso(first)} .. {iso(last)} ({count} windows):"
                f" {reasons[(ref, first)]}",
                collector=query.collector,
                query=query.name,
                first=iso(first),
                last=iso(last),
                windows=count,
                error=reasons[(ref, first)],
            )
            if output is None:
                commands.append(
                    _command(
                        argv,
                        drop=("--query", "--start", "--end"),
                        add=[
                            "--query",
                            f"{query.collector}/{query.name}",
                            "--start",
                            str(first),
                            "--end",
                            str(last),
                        ],
                    )
                )
    if output is not None:
        add = [
            arg
            for ref in by_query
            for arg in ("--query", f"{queries[ref].collector}/{queries[ref].name}")
        ]
        commands.append(_command(argv, drop=("--query",), add=add))
        note = "retry just them (windows already recorded are not fetched again):"
    else:
        note = "retry just them:"
    console.say(note)
    for command in commands:
        console.say(f"  {command}", retry_command=command)


def _command(argv: list[str], drop: Sequence[str], add: list[str]) -> str:
    """The backfill command line with the flags in ``drop`` replaced by ``add``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in drop:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return shlex.join(["datadog-cnm-exporter", "backfill", *kept, *add])
