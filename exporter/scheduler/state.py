"""What the scheduler knows about one query, read by /metrics and the landing page.

Written only by the query's :class:`~exporter.scheduler.poll.QueryPoller` (poll outcomes,
and what the clock decides: late, stale); everyone else reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.schema import DEFAULT_ACCOUNT


@dataclass
class QueryState:
    collector: str
    name: str
    endpoint: str
    interval: float
    window: float | None
    up: bool = False
    # Shown as Unix time; every age is taken on the monotonic scale (the wall clock jumps).
    last_success: float | None = None  # Unix time (datadog_exporter_last_success_timestamp_...)
    last_success_monotonic: float | None = None  # the same moment, monotonic: its age
    last_attempt: float | None = None  # Unix time the last poll started
    last_completed: float | None = None  # monotonic: the last poll finished, success or failure
    last_duration: float | None = None
    last_error: str | None = None
    series: int = 0
    serving_stale: bool = False
    account: str = DEFAULT_ACCOUNT
    added_at: float | None = None  # monotonic: when the scheduler took the query on
    late: bool = False  # no poll finished for over two intervals (then up is False too)
    # Rows of the last successful answer, before the max_series cut; None before the first.
    rows: int | None = None
    # Whether 0 rows is worth a warning and a hint (False where it is the healthy answer).
    empty_answer_is_news: bool = True
    # Per configured group_by field, True when the last non-empty answer never resolved it.
    group_by_unresolved: tuple[tuple[str, bool], ...] = ()

    @property
    def unresolved_fields(self) -> list[str]:
        return [field for field, unresolved in self.group_by_unresolved if unresolved]
