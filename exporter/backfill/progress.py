"""What a person (or a log pipeline) sees while a backfill runs.

On a terminal (stderr a TTY, logfmt logs): a tqdm bar with windows done and total, API
calls, 429s, rate-limit pauses and the ETA. Otherwise one ``progress`` log line every
``LOG_EVERY_PERCENT`` percent, with the same numbers as fields, so ``--log.format json``
stays one JSON object per line. :class:`Console` prints the plan and the summary the same
way: plain lines for people, log records for machines.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

from tqdm import tqdm

from ..clock import SYSTEM_CLOCK, Clock
from .source import Stats

log = logging.getLogger("exporter.backfill")

LOG_EVERY_PERCENT = 5


def next_log_percent(done: int, total: int, every: int = LOG_EVERY_PERCENT) -> int:
    """The first multiple of ``every`` percent above what ``done`` of ``total`` reached."""
    if total <= 0:
        return 100
    reached = done * 100 // total
    return min(100, (reached // every + 1) * every)


def _width(stream: TextIO) -> int:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return 0
    return size.columns if size.lines else 0


class Console:
    """Plain text on stderr for people (logfmt), one log record per item for json."""

    def __init__(self, json_logs: bool, stream: TextIO | None = None) -> None:
        self.json_logs = json_logs
        self.stream = stream or sys.stderr
        self.bar: tqdm[Any] | None = None

    def say(self, text: str, **fields: object) -> None:
        if self.json_logs:
            log.info(text.strip(), extra=fields)
        elif self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)


class Progress:
    """Counts finished windows (written or failed) and shows them."""

    def __init__(
        self,
        total: int,
        already_done: int,
        stats: Stats,
        console: Console,
        *,
        bar: bool,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.total = total
        self.done = already_done
        self.started_with = already_done
        self.stats = stats
        self.clock = clock
        self.started_at = clock.monotonic()
        self.console = console
        self._next_percent = next_log_percent(already_done, total)
        self.bar: tqdm[Any] | None = None
        if bar:
            sized = _width(console.stream) > 0
            self.bar = tqdm(
                total=total,
                initial=already_done,
                unit="window",
                file=console.stream,
                # A terminal that reports no size (a fresh pty) would hide the bar.
                dynamic_ncols=sized,
                ncols=None if sized else 100,
                nrows=None if sized else 24,
                mininterval=0.5,
            )
            console.bar = self.bar

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix(
                calls=self.stats.calls,
                http_429=self.stats.rate_limited,
                pauses=self.stats.pauses,
                refresh=False,
            )
            self.bar.update(1)
        elif self.done * 100 >= self._next_percent * self.total:
            self._next_percent = next_log_percent(self.done, self.total)
            log.info("progress", extra=self.fields())

    def eta_seconds(self) -> float | None:
        fetched = self.done - self.started_with
        if fetched <= 0:
            return None
        elapsed = self.clock.monotonic() - self.started_at
        return (self.total - self.done) * elapsed / fetched

    def fields(self) -> dict[str, object]:
        eta = self.eta_seconds()
        return {
            "windows_done": self.done,
            "windows_total": self.total,
            "percent": self.done * 100 // self.total if self.total else 100,
            "calls": self.stats.calls,
            "http_429": self.stats.rate_limited,
            "rate_limit_pauses": self.stats.pauses,
            "eta_seconds": None if eta is None else round(eta),
        }

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.console.bar = None
