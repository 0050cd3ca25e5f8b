"""One backfill run: fetch every window not yet recorded, write every day that is complete.

Queries of one (account, endpoint) share a lane: its windows are fetched in order (query by
query, oldest first) by a few workers, since Datadog budgets each endpoint of each
organisation separately; lanes run side by side. Rendering, the journal and the day files
live on one worker thread, so the event loop only waits for the network and the budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..config.report import limit_per_hour
from ..durations import format_duration
from ..scheduler.poll import DECODE_ERROR
from .grid import day_bounds, day_of, format_hours
from .journal import Journal, QueryRef
from .progress import Console, Progress
from .source import (
    IN_FLIGHT_PER_ENDPOINT,
    DecodeError,
    Fatal,
    HistoryQuery,
    WindowFailed,
    WindowSource,
    render,
)

log = logging.getLogger("exporter.backfill")


@dataclass
class Target:
    """One query's part of the run: its grid points and what is left of each day."""

    query: HistoryQuery
    ref: QueryRef
    points: range
    pending: list[int] = field(default_factory=list)
    left_per_day: dict[str, int] = field(default_factory=dict)

    @property
    def step(self) -> int:
        return self.points.step


@dataclass(frozen=True, slots=True)
class Failure:
    target: Target
    t: int
    reason: str
    message: str


@dataclass
class Outcome:
    total: int = 0
    done: int = 0
    failures: list[Failure] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    samples: int = 0
    dropped_rows: int = 0
    fatal: str | None = None
    interrupted: bool = False
    elapsed: float = 0.0
    fetched: int = 0
    lane_calls: dict[tuple[str, str], int] = field(default_factory=dict)
    # Per lane, calls Datadog counted in each rate-limit period that ended during the run
    # (limit - remaining of the period's last answer); the first one may have begun earlier.
    lane_periods: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.done == self.total and not self.fatal and not self.interrupted


def file_name(query: HistoryQuery, day: str) -> str:
    return f"{query.collector}-{query.name}-{day}.om"


class Runner:
    def __init__(
        self,
        targets: list[Target],
        source: WindowSource,
        journal: Journal,
        output: Path | None,
        *,
        labels: bytes,
        console: Console,
        bar: bool,
        families: frozenset[str] | None = None,
    ) -> None:
        self.targets = targets
        self.source = source
        self.journal = journal
        self.output = output  # None: spool only, the caller streams it out at the end
        self.labels = labels
        self.families = families  # None: every family
        self.console = console
        self.bar = bar
        self.outcome = Outcome()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-journal")
        self._announced: set[tuple[str, str]] = set()
        self._lane_left: dict[tuple[str, str], int] = defaultdict(int)
        self._periods: dict[tuple[str, str], tuple[float, int]] = {}  # reset_at, calls used
        source.on_answer = self._on_answer

    # -- before the first call ------------------------------------------------------------------

    def prepare(self) -> int:
        """Read the journal: what is done, what to fetch; write days left complete. Returns
        the number of windows recorded by earlier runs."""
        already = 0
        for target in self.targets:
            done = self.journal.done(target.ref)
            for day in self.journal.written(target.ref):
                if (
                    self.output is not None
                    and not (self.output / file_name(target.query, day)).exists()
                ):
                    log.warning(
                        "a written day's file is missing; fetching that day again",
                        extra={"query": target.query.name, "day": day},
                    )
                    self.journal.forget_day(target.ref, day, day_bounds(day))
                    done -= set(range(*day_bounds(day)))
            target.pending = [t for t in target.points if t not in done]
            already += len(target.points) - len(target.pending)
            for t in target.pending:
                day = day_of(t)
                target.left_per_day[day] = target.left_per_day.get(day, 0) + 1
            self._lane_left[(target.query.account, target.query.endpoint)] += len(target.pending)
            if self.output is not None:
                written = self.journal.written(target.ref)
                for day in sorted({day_of(t) for t in target.points} - written):
                    if day not in target.left_per_day:
                        self._write_day(target, day)
        self.outcome.total = sum(len(t.points) for t in self.targets)
        self.outcome.done = already
        return already

    # -- the run --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> Outcome:
        started = self.source.clock.monotonic()
        progress = Progress(
            self.outcome.total,
            self.outcome.done,
            self.source.stats,
            self.console,
            bar=self.bar,
            clock=self.source.clock,
        )
        self._progress = progress
        lanes: dict[tuple[str, str], list[Target]] = defaultdict(list)
        for target in self.targets:
            lanes[(target.query.account, target.query.endpoint)].append(target)
        workers = []
        for targets in lanes.values():
            items = ((target, t) for target in targets for t in target.pending)
            workers += [
                asyncio.create_task(self._worker(items)) for _ in range(IN_FLIGHT_PER_ENDPOINT)
            ]
        everything: asyncio.Future[Any] = asyncio.gather(*workers)
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({everything, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper.done() and not everything.done():
                self.outcome.interrupted = True
            if everything.done() and everything.exception() is not None:
                error = everything.exception()
                if not isinstance(error, Fatal):
                    raise error  # type: ignore[misc]
                self.outcome.fatal = str(error)
        finally:
            stopper.cancel()
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            # A window being recorded finishes (its transaction is all or nothing anyway).
            await asyncio.get_running_loop().run_in_executor(self._thread, lambda: None)
            self._thread.shutdown(wait=True)
            progress.close()
        self.outcome.elapsed = self.source.clock.monotonic() - started
        return self.outcome

    async def _worker(self, items: Iterator[tuple[Target, int]]) -> None:
        loop = asyncio.get_running_loop()
        for target, t in items:
            try:
                body = await self.source.fetch(target.query, t)
            except WindowFailed as failure:
                self._failed(target, t, failure.reason, str(failure))
                continue
            self.outcome.fetched += 1
            try:
                await loop.run_in_executor(self._thread, self._store, target, t, body)
            except DecodeError as exc:
                self._failed(target, t, DECODE_ERROR, str(exc))
                continue
            self.outcome.done += 1
            self._progress.advance()

    def _failed(self, target: Target, t: int, reason: str, message: str) -> None:
        self.outcome.failures.append(Failure(target, t, reason, message))
        log.warning(
            "window failed",
            extra={
                "collector": target.query.collector,
                "query": target.query.name,
                "t": t,
                "reason": reason,
                "error": message,
            },
        )
        self._progress.advance()

    def _store(self, target: Target, t: int, body: bytes) -> None:
        """On the journal thread: render, record, and write the day once it is complete."""
        # Other families are left out as the window is rendered: they cost no rows either.
        window = render(target.query, body, self.labels, self.families)
        self.outcome.dropped_rows += window.dropped_rows
        self.journal.record(target.ref, t, window.samples, window.headers)
        day = day_of(t)
        target.left_per_day[day] -= 1
        if target.left_per_day[day] == 0 and self.output is not None:
            self._write_day(target, day)

    def _write_day(self, target: Target, day: str) -> None:
        assert self.output is not None
        path = self.output / file_name(target.query, day)
        samples = self.journal.write_day(target.ref, day, day_bounds(day), path)
        self.outcome.files.append(path)
        self.outcome.samples += samples
        log.debug("day written", extra={"file": str(path), "samples": samples})

    def stream_out(self, out: BinaryIO) -> None:
        """``--output -``: everything spooled, as one exposition."""
        self.outcome.samples = self.journal.write_all(out)

    # -- rate-limit news ------------------------------------------------------------------------

    def _count_period(
        self,
        lane: tuple[str, str],
        limit: int,
        remaining: int | None,
        reset_at: float | None,
        period: float,
    ) -> None:
        """Track the calls Datadog counted per period (its reset moves on by a period)."""
        if remaining is None or reset_at is None:
            return
        current = self._periods.get(lane)
        used = limit - remaining
        if current is None or reset_at > current[0] + period / 2:
            if current is not None:
                self.outcome.lane_periods.setdefault(lane, []).append(current[1])
            self._periods[lane] = (reset_at, used)
        else:
            self._periods[lane] = (current[0], max(current[1], used))

    def _on_answer(self, account: str, endpoint: str) -> None:
        lane = (account, endpoint)
        self.outcome.lane_calls[lane] = self.outcome.lane_calls.get(lane, 0) + 1
        state = self.source.client(account).rate_limits.limits(endpoint)
        if state.limit is None or not state.period:
            return
        self._count_period(lane, state.limit, state.remaining, state.reset_at, state.period)
        if lane in self._announced:
            return
        self._announced.add(lane)
        hours = self._lane_left[lane] / limit_per_hour(state.limit, state.period)
        self.console.say(
            f"Datadog's rate limit for {endpoint} ({account}): {state.limit} calls per "
            f"{format_duration(state.period)}; {self._lane_left[lane]:,} calls take "
            f"~{format_hours(hours)}",
            account=account,
            endpoint=endpoint,
            limit=state.limit,
            period_seconds=state.period,
            calls=self._lane_left[lane],
            hours=round(hours, 2),
        )
