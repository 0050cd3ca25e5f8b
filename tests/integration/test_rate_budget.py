"""Rate-limit budgeting against the simulator's real per-period budget."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from exporter.collectors.connections import ConnectionsJob
from exporter.config.schema import ConnectionsQuery
from exporter.scheduler import PollPolicy, Scheduler
from simulator import Simulator, SimulatorOptions
from tests.clocks import SteppedClock, run_stepped
from tests.helpers import Samples, parse_metrics

from .conftest import API_KEY, APP_KEY, scheduler_against

PERIOD = 6
LIMIT = 20


@pytest.fixture
async def limited() -> AsyncIterator[tuple[Simulator, Scheduler, SteppedClock]]:
    """A simulator whose 6 s rate-limit period starts now, allowing 20 calls per period; it
    and the scheduler both keep time on one stepped clock."""
    clock = SteppedClock(wall=1_699_999_200.0)  # a period boundary (an hour's)
    sim = Simulator(
        SimulatorOptions(
            api_key=API_KEY, app_key=APP_KEY, rate_limit=LIMIT, rate_limit_period=PERIOD
        ),
        clock=clock.wall,
    )
    await sim.start()
    try:
        policy = PollPolicy(startup_spread=0.0)
        async with scheduler_against(
            sim.url, request_timeout=2.0, clock=clock, policy=policy
        ) as scheduler:
            yield sim, scheduler, clock
    finally:
        await sim.stop()


async def test_a_low_budget_is_spread_instead_of_bursting_into_429(
    limited: tuple[Simulator, Scheduler, SteppedClock],
) -> None:
    sim, scheduler, clock = limited
    # 10 queries every second want 60 calls per 6 s period; the budget is 20.
    await scheduler.start(
        ConnectionsJob(ConnectionsQuery(name=f"q{i}", interval=1.0, limit=10 + i))
        for i in range(10)
    )
    await run_stepped(clock, PERIOD + 2.5, sleepers=11)  # ten loops and the sweeper
    await scheduler.stop()
    statuses = [r.status for r in sim.requests_to("connections")]
    assert 429 not in statuses
    # The first period's calls: a burst while the budget was comfortable, then paced ones.
    first_period = [r.at for r in sim.requests_to("connections")][:LIMIT]  # the clock's time
    paced = first_period[-4:]
    gaps = [b - a for a, b in itertools.pairwise(paced)]
    assert min(gaps) > 0.3, gaps
    # Polls that found no free slot before their next tick were skipped and said why ...
    skipped = sum(
        value
        for (name, labels), value in _errors(scheduler).items()
        if dict(labels).get("reason") == "rate_budget"
    )
    assert skipped > 0
    # ... and polling went on in the next period.
    assert len(statuses) > LIMIT


def _errors(scheduler: Scheduler) -> Samples:
    return parse_metrics(scheduler.metrics.render().decode())
