"""Rate-limit budgeting: when the next call to an endpoint may go.

Datadog tells each answer how many calls are left in the current period
(``X-RateLimit-Remaining``) and when it ends (``X-RateLimit-Reset``). While plenty is left,
calls go when their schedule says. Once the budget runs low, calls are spread evenly over
the rest of the period instead of bursting into a 429 that would block every query of the
endpoint; with nothing left, the next call waits for the new period. Pure: no clock, no I/O;
the state it is applied to lives in ratelimit.py.
"""

from __future__ import annotations

from dataclasses import dataclass

# Pacing starts when at most this share of the period's budget is left...
LOW_BUDGET_FRACTION = 0.25
# ...or this many calls, whichever is more (also used while the limit is unknown).
LOW_BUDGET_CALLS = 5


@dataclass(frozen=True, slots=True)
class Slot:
    """When a call may go (``at``) and the earliest the one after it may go (``next_free``)."""

    at: float
    next_free: float


def low_budget(limit: int | None) -> float:
    """At or below this many remaining calls, calls are paced."""
    return max(float(LOW_BUDGET_CALLS), (limit or 0) * LOW_BUDGET_FRACTION)


def next_slot(
    now: float,
    free_at: float,
    remaining: int | None,
    limit: int | None,
    reset_at: float | None,
) -> Slot:
    """Place one call to an endpoint; all times on one monotonic clock.

    ``free_at`` is the ``next_free`` of the previous paced call (calls already placed take
    their share); ``remaining``/``limit``/``reset_at`` are what the endpoint's last answer
    said. A period that has ended, or headers never seen, mean no pacing.
    """
    if remaining is None or reset_at is None or reset_at <= now:
        return Slot(now, now)
    if remaining <= 0:
        return Slot(reset_at, reset_at)
    if remaining > low_budget(limit):
        return Slot(now, now)
    at = max(now, free_at)
    if at >= reset_at:
        return Slot(reset_at, reset_at)  # the earlier reservations reach into a fresh period
    # The rest of the period, from this call on, divided evenly among the calls left.
    return Slot(at, at + (reset_at - at) / remaining)
