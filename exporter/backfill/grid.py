"""The step grid, UTC days, and what a backfill costs in API calls and time (pure).

A backfilled sample at time ``t`` holds what the live exporter would have served when
polled at ``t``; ``t`` runs over the multiples of the step inside ``[start, end]``, so two
runs with the same step put their samples on the same instants.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..config.report import limit_per_hour
from ..durations import format_duration

DAY_SECONDS = 86400


def grid(start: float, end: float, step: int) -> range:
    """The multiples of ``step`` (whole seconds, >= 1) in ``[start, end]``."""
    if step < 1:
        raise ValueError("the step must be at least 1s")
    first = math.ceil(start / step) * step
    last = math.floor(end / step) * step
    return range(first, last + 1, step) if last >= first else range(0)


def day_of(t: int) -> str:
    """The UTC day of Unix time ``t``, as ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def day_bounds(day: str) -> tuple[int, int]:
    """``[start, end)`` of a UTC day in Unix seconds."""
    start = int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    return start, start + DAY_SECONDS


def days(points: Iterable[int]) -> Iterator[tuple[str, list[int]]]:
    """Consecutive grid points grouped by UTC day (the points must be ascending)."""
    current: str | None = None
    bucket: list[int] = []
    for t in points:
        day = day_of(t)
        if day != current:
            if bucket:
                assert current is not None
                yield current, bucket
            current, bucket = day, []
        bucket.append(t)
    if bucket:
        assert current is not None
        yield current, bucket


def runs(points: Sequence[int], step: int) -> list[tuple[int, int]]:
    """Ascending grid points as ``(first, last)`` runs of consecutive multiples of ``step``."""
    out: list[tuple[int, int]] = []
    for t in points:
        if out and t == out[-1][1] + step:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


@dataclass(frozen=True, slots=True)
class Lane:
    """The calls one (account, endpoint) budget has to carry, and the limit if known."""

    account: str
    endpoint: str
    calls: int
    limit: int | None = None
    period: float | None = None

    @property
    def hours(self) -> float | None:
        if self.limit is None or self.period is None:
            return None
        return self.calls / limit_per_hour(self.limit, self.period)


def projection(per_query: Sequence[tuple[str, int, int]], lanes: Sequence[Lane]) -> list[str]:
    """What a run costs, printed before the first call: per query (``COLLECTOR/NAME``, step,
    calls) its calls, and per (account, endpoint) budget the hours they take at the known
    limit (queries of one endpoint share it)."""
    lines = ["API calls (one per window; retries add more):"]
    lines += [
        f"  {name:<40} one window every {format_duration(step)}: {calls:,} calls per query"
        for name, step, calls in per_query
    ]
    for lane in lanes:
        head = f"  {lane.account + ' ' + lane.endpoint:<40} {lane.calls:,} calls"
        if lane.hours is None or lane.limit is None or lane.period is None:
            lines.append(f"{head}, limit unknown until Datadog's first answer")
        else:
            lines.append(
                f"{head}, ~{format_hours(lane.hours)} at the known limit "
                f"({lane.limit} per {format_duration(lane.period)})"
            )
    return lines


def format_hours(hours: float) -> str:
    if hours < 1:
        minutes = max(1, round(hours * 60))
        return f"{minutes} minute{'s' if minutes > 1 else ''}"
    return f"{hours:.1f} hours"


def rate_summary(
    calls: int,
    elapsed: float,
    limit: int | None,
    period: float | None,
    whole_periods: Sequence[int],
) -> tuple[str, dict[str, object]]:
    """How a lane's calls compare with Datadog's limit, for the summary: text and log fields.

    ``whole_periods`` holds the calls Datadog counted in each rate-limit period that the run
    covered from start to end. The rate per hour is measured over those periods only: a run
    shorter than a whole period is a burst, and extrapolating a few seconds of it to an hour
    would read like running over the limit when nothing was.
    """
    text = f"{calls:,} calls in {format_duration(round(elapsed))}"
    fields: dict[str, object] = {"calls": calls}
    if not limit or not period:
        return text + "; Datadog sent no rate-limit headers", fields
    allowed = limit_per_hour(limit, period)
    fields["limit_per_hour"] = round(allowed)
    if not whole_periods:
        return (
            text + f", within one rate-limit period ({limit} calls per "
            f"{format_duration(period)}, Datadog's limit: {allowed:,.0f} per hour); too short "
            "to measure a rate per hour",
            fields,
        )
    share = sum(whole_periods) / (len(whole_periods) * limit)
    per_hour = share * allowed
    fields.update(
        full_periods=len(whole_periods),
        share_of_limit=round(share, 3),
        calls_per_hour=round(per_hour),
    )
    return (
        text + f"; {share:.0%} of the allowed calls in {len(whole_periods)} full rate-limit "
        f"periods = {per_hour:,.0f} per hour (Datadog's limit: {allowed:,.0f} per hour)",
        fields,
    )
