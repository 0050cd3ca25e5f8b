"""Rate-limit budgeting policy: spread a running-low budget, never burst into a 429."""

from __future__ import annotations

import itertools

import pytest

from exporter.datadog.budget import Slot, low_budget, next_slot


@pytest.mark.parametrize(
    ("remaining", "limit", "reset_at"),
    [
        (None, None, None),  # no headers seen yet
        (500, 1000, 130.0),  # plenty left
        (3, 1000, 90.0),  # the period already ended: a fresh budget
    ],
)
def test_calls_go_on_schedule_while_the_budget_is_comfortable_or_unknown(
    remaining: int | None, limit: int | None, reset_at: float | None
) -> None:
    assert next_slot(100.0, 0.0, remaining, limit, reset_at) == Slot(100.0, 100.0)


def test_a_low_budget_is_spread_evenly_over_the_rest_of_the_period() -> None:
    # 4 calls left, 40 s to the reset: one call every 10 s.
    first = next_slot(100.0, 0.0, 4, 100, 140.0)
    assert first == Slot(100.0, 110.0)
    # A second query asking at the same moment gets the next free slot, not a burst.
    second = next_slot(100.0, first.next_free, 4, 100, 140.0)
    assert second.at == 110.0 and second.next_free > second.at


def test_reservations_past_the_reset_fall_into_the_fresh_period() -> None:
    assert next_slot(100.0, 150.0, 2, 100, 125.0) == Slot(125.0, 125.0)


def test_no_budget_left_waits_for_the_new_period() -> None:
    assert next_slot(100.0, 0.0, 0, 60, 125.0) == Slot(125.0, 125.0)


def test_pacing_starts_at_a_quarter_of_the_limit_or_five_calls() -> None:
    assert low_budget(1000) == 250 and low_budget(8) == 5 and low_budget(None) == 5
    assert next_slot(0.0, 0.0, 251, 1000, 60.0).next_free == 0.0
    assert next_slot(0.0, 0.0, 250, 1000, 60.0).next_free == pytest.approx(60 / 250)


def test_spread_calls_never_outnumber_the_remaining_budget() -> None:
    """A query polling flat out with 7 calls left for 30 s: 7 evenly spaced calls, no 429."""
    now, free, remaining, reset_at = 0.0, 0.0, 7, 30.0
    placed = []
    while True:
        slot = next_slot(now, free, remaining, 100, reset_at)
        if slot.at >= reset_at:
            break
        placed.append(slot.at)
        now, free, remaining = slot.at, slot.next_free, remaining - 1  # the answer's headers
    assert len(placed) == 7
    gaps = [b - a for a, b in itertools.pairwise(placed)]
    assert all(gap == pytest.approx(30 / 7) for gap in gaps)
