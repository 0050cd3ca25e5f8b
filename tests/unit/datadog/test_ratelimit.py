"""Rate-limit state has one owner: what answers say goes in, acquire() waits for the slot on
the injected clock or says why not, and /metrics sees the same state in Unix time."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.datadog.ratelimit import NoSlot, RateLimits
from tests.clocks import SteppedClock


def headers(limit: int, remaining: int, period: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Period": str(period),
        "X-RateLimit-Reset": str(reset),
    }


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_answers_headers_are_what_the_endpoint_reports() -> None:
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record("connections", headers(1000, 999, 60, 42))
    limits.record("connections", {"X-RateLimit-Remaining": "not a number"})  # kept as it was
    state = limits.limits("connections")
    assert (state.limit, state.remaining, state.period) == (1000, 999, 60.0)
    assert state.reset_at == clock.monotonic() + 42
    assert state.blocked_until == 0.0
    (view,) = limits.views("eu")
    assert (view.account, view.endpoint, view.limit, view.remaining, view.period) == (
        "eu",
        "connections",
        1000,
        999,
        60.0,
    )
    assert view.blocked_until_unix is None


async def test_a_429_is_waited_out_on_the_injected_clock() -> None:
    clock = SteppedClock()
    limits = RateLimits(clock)
    wait, until = limits.record_429("dns", {"X-RateLimit-Reset": "30"})
    assert (wait, until) == (30.0, clock.monotonic() + 30)
    (view,) = limits.views()
    assert view.blocked_until_unix == clock.wall() + 30

    call = asyncio.create_task(limits.acquire("dns", deadline=clock.monotonic() + 60))
    await settle()
    assert clock.slept == [30.0] and not call.done()
    clock.advance(29)
    await settle()
    assert not call.done()
    clock.advance(1)
    await call
    assert limits.views()[0].blocked_until_unix is None  # the block is over
    await limits.acquire("connections")  # other endpoints were never held
    assert clock.slept == [30.0]


async def test_a_429_ending_after_the_deadline_says_rate_limited_without_waiting() -> None:
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record_429("cases", {"X-RateLimit-Reset": "30"})
    with pytest.raises(NoSlot) as caught:
        await limits.acquire("cases", deadline=clock.monotonic() + 30)
    assert caught.value.reason == "rate_limited"
    assert str(caught.value) == "cases: rate limited by Datadog for another 30s"
    assert clock.slept == []


@pytest.mark.parametrize(
    ("answer", "blocked"),
    [({}, 60.0), ({"X-RateLimit-Period": "10"}, 10.0), ({"X-RateLimit-Reset": "0"}, 1.0)],
    ids=["no headers: a minute", "the period", "reset 0: a second, not a tight loop"],
)
async def test_a_429_without_a_usable_reset_blocks_for_the_period_or_a_minute(
    answer: dict[str, str], blocked: float
) -> None:
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record("audience", answer)
    wait, until = limits.record_429("audience", answer)
    assert wait == blocked and until == clock.monotonic() + blocked


async def test_a_429_with_only_retry_after_blocks_for_what_it_asks() -> None:
    clock = SteppedClock()
    limits = RateLimits(clock)
    wait, until = limits.record_429("cases", {"Retry-After": "45"})
    assert wait == 45.0 and until == clock.monotonic() + 45
    # Datadog's own header wins when both are sent.
    wait, _ = limits.record_429("dns", {"Retry-After": "45", "X-RateLimit-Reset": "20"})
    assert wait == 20.0


async def test_a_low_budget_spreads_the_calls_over_the_rest_of_the_period() -> None:
    """4 calls left of 100 for 40 s: one now, then one every 10 s, not a burst."""
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record("connections", headers(100, 4, 60, 40))
    await limits.acquire("connections")
    assert clock.slept == []
    for left in (3, 2, 1):
        limits.record("connections", headers(100, left, 60, int(40 - clock.elapsed)))
        call = asyncio.create_task(limits.acquire("connections"))
        await settle()
        assert clock.slept[-1] == pytest.approx(10.0)
        clock.advance(10.0)
        await call
    assert clock.elapsed == 30.0


async def test_a_slot_past_the_deadline_says_rate_budget() -> None:
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record("connections", headers(100, 2, 60, 40))
    await limits.acquire("connections")  # takes the first of the two; the next is 20 s on
    with pytest.raises(NoSlot) as caught:
        await limits.acquire("connections", deadline=clock.monotonic() + 15)
    assert caught.value.reason == "rate_budget"
    assert "2 of 100 calls left for 40s; next free slot in 20s" in str(caught.value)
    assert clock.slept == []


async def test_calls_in_flight_count_against_what_is_left() -> None:
    """6 left of 20 is plenty (pacing starts at 5); with 2 calls unanswered it is not."""
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record("dns", headers(20, 6, 60, 30))
    await limits.acquire("dns")
    await limits.acquire("dns")
    assert clock.slept == []
    with limits.sending("dns"), limits.sending("dns"):
        await limits.acquire("dns")  # 4 available: paced from now on
        with pytest.raises(NoSlot):
            await limits.acquire("dns", deadline=clock.monotonic() + 1)
    assert limits.limits("dns").remaining == 6


async def test_forget_starts_afresh() -> None:
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record_429("dns", {"X-RateLimit-Reset": "300"})
    limits.forget()
    assert limits.views() == []
    await limits.acquire("dns", deadline=clock.monotonic() + 1)
    assert clock.slept == []


async def test_a_reserve_keeps_the_last_calls_of_the_period_unused() -> None:
    """1 call left for 30 s: it goes now without a reserve; with one call in reserve (answers
    to concurrent requests read out of order) the caller waits for the next period."""
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record("dns", headers(20, 1, 60, 30))
    with pytest.raises(NoSlot) as caught:
        await limits.acquire("dns", deadline=clock.monotonic() + 10, reserve=1)
    assert caught.value.reason == "rate_budget"
    assert "0 of 20 calls left" in str(caught.value)
    call = asyncio.create_task(limits.acquire("dns", reserve=1))
    await settle()
    assert clock.slept == [30.0] and not call.done()
    clock.advance(30.0)
    await call
    await limits.acquire("dns", deadline=clock.monotonic() + 1)  # a fresh period: no wait
    assert clock.slept == [30.0]


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Period",
                "X-RateLimit-Reset",
            ]
        ),
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(["inf", "-inf", "nan", "1e400", "-5", "1e12", "9" * 400]),
        ),
    )
)
def test_no_header_value_raises_or_leaves_the_budget_unbounded(answer: dict[str, str]) -> None:
    """Whatever an answer's X-RateLimit-* headers hold, recording them raises nothing, keeps
    every figure a sane whole number, and a 429 blocks for at most an hour."""
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record("connections", answer)
    state = limits.limits("connections")
    for figure in (state.limit, state.remaining, state.period):
        assert figure is None or 0 <= figure <= 10**9
    wait, until = limits.record_429("connections", answer)
    assert 1.0 <= wait <= 3600.0
    assert until == clock.monotonic() + wait


def test_a_reset_of_years_blocks_for_an_hour_and_nonsense_is_ignored() -> None:
    clock = SteppedClock()
    limits = RateLimits(clock)
    limits.record("dns", headers(100, 50, 60, 30))
    limits.record("dns", {"X-RateLimit-Remaining": "inf", "X-RateLimit-Limit": "-1"})
    state = limits.limits("dns")
    assert (state.limit, state.remaining) == (100, 50)  # kept as they were
    assert limits.record_429("dns", {"X-RateLimit-Reset": "100000000"})[0] == 3600.0  # 3 years
    assert limits.record_429("dns", {"X-RateLimit-Reset": "1e12"})[0] == 60.0  # unreadable: period


async def test_acquire_says_how_long_it_waited() -> None:
    clock = SteppedClock()
    limits = RateLimits(clock)
    assert await limits.acquire("connections") == 0.0  # nothing known: no wait
    limits.record_429("connections", {"X-RateLimit-Reset": "7"})
    call = asyncio.create_task(limits.acquire("connections"))
    await settle()
    clock.advance(7)
    assert await call == 7.0
