"""A Datadog incident costs a bounded number of calls: at most datadog.max_attempts requests
per poll whatever the interval, Retry-After honoured inside the poll, the failure line saying
how many attempts were made, and one line when the query recovers."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from exporter.config.schema import DEFAULT_MAX_ATTEMPTS
from exporter.datadog.client import DatadogClient
from exporter.logs import Redactor
from exporter.scheduler import Scheduler
from exporter.selfmetrics import SelfMetrics
from exporter.snapshot import SnapshotStore
from simulator import Fault, Simulator
from tests.clocks import FastForwardClock

from .conftest import credentials
from .test_faults import error_counts
from .test_scheduler import job

KEY = ("connections", "a")


@asynccontextmanager
async def storm_scheduler(
    simulator: Simulator, clock: FastForwardClock, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> AsyncIterator[Scheduler]:
    """A scheduler on virtual time: its retry waits pass at once, so hours cost moments."""
    redactor = Redactor()
    metrics = SelfMetrics()
    client = DatadogClient(
        simulator.url,
        credentials=credentials(redactor),
        redactor=redactor,
        timeout=2.0,
        max_response_size=1 << 24,
        on_response=metrics.count_response,
        clock=clock,
    )
    scheduler = Scheduler(
        lambda _account: client,
        redactor,
        SnapshotStore(),
        metrics,
        clock=clock,
        rng=random.Random(7),
        max_attempts=max_attempts,
    )
    metrics.watch(client.rate_limits.views)
    try:
        yield scheduler
    finally:
        await scheduler.stop()
        await client.close()


async def requests_per_poll(
    scheduler: Scheduler, simulator: Simulator, clock: FastForwardClock, interval: float, polls: int
) -> list[int]:
    """Poll ``polls`` times, one interval apart; the requests each poll sent."""
    counts = []
    for _ in range(polls):
        before = len(simulator.requests_to("connections"))
        await scheduler.poll_once(KEY, clock.monotonic() + interval)
        counts.append(len(simulator.requests_to("connections")) - before)
        clock.elapsed += interval
    return counts


@pytest.mark.parametrize("interval", ["1m", "1h"])
async def test_a_503_storm_costs_at_most_the_cap_per_poll_whatever_the_interval(
    simulator: Simulator, caplog: pytest.LogCaptureFixture, interval: str
) -> None:
    """Before the cap a 60s query made ~9 requests per failed poll and an hourly one over
    100 (full-jitter retries until the next tick); now both make DEFAULT_MAX_ATTEMPTS."""
    clock = FastForwardClock()
    simulator.set_fault("connections", Fault(kind="status", status=503))
    async with storm_scheduler(simulator, clock) as scheduler:
        await scheduler.add(job("a", interval=interval))
        seconds = scheduler.state(KEY).interval
        with caplog.at_level(logging.WARNING, logger="exporter.scheduler"):
            counts = await requests_per_poll(scheduler, simulator, clock, seconds, 5)
        assert counts == [DEFAULT_MAX_ATTEMPTS] * 5
        assert error_counts(scheduler, "a") == {"server_error": 5}
    failures = [r for r in caplog.records if r.getMessage() == "poll failed"]
    assert [r.__dict__["attempts"] for r in failures] == [DEFAULT_MAX_ATTEMPTS] * 5


async def test_the_cap_is_configurable_and_changes_for_running_queries(
    simulator: Simulator,
) -> None:
    clock = FastForwardClock()
    simulator.set_fault("connections", Fault(kind="status", status=500))
    async with storm_scheduler(simulator, clock, max_attempts=1) as scheduler:
        await scheduler.add(job("a"))
        assert await requests_per_poll(scheduler, simulator, clock, 60, 2) == [1, 1]
        scheduler.set_max_attempts(5)
        assert await requests_per_poll(scheduler, simulator, clock, 60, 2) == [5, 5]


async def test_retry_after_is_waited_exactly_when_it_fits_before_the_next_poll(
    simulator: Simulator,
) -> None:
    clock = FastForwardClock()
    simulator.set_fault("connections", Fault(kind="status", status=503, retry_after=17, count=1))
    async with storm_scheduler(simulator, clock) as scheduler:
        await scheduler.add(job("a"))
        await scheduler.poll_once(KEY, clock.monotonic() + 60)
        assert scheduler.state(KEY).up
    assert clock.slept == [17.0]
    assert [r.status for r in simulator.requests_to("connections")] == [503, 200]


async def test_a_retry_after_beyond_the_next_poll_ends_the_poll_without_waiting(
    simulator: Simulator,
) -> None:
    clock = FastForwardClock()
    simulator.set_fault("connections", Fault(kind="status", status=503, retry_after=600))
    async with storm_scheduler(simulator, clock) as scheduler:
        await scheduler.add(job("a"))
        await scheduler.poll_once(KEY, clock.monotonic() + 60)
        assert not scheduler.state(KEY).up
        assert "Retry-After 600s" in (scheduler.state(KEY).last_error or "")
    assert clock.slept == []
    assert len(simulator.requests_to("connections")) == 1


async def test_the_first_good_poll_after_failures_says_how_long_the_query_was_down(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FastForwardClock()
    simulator.set_fault("connections", Fault(kind="status", status=400, count=2))
    async with storm_scheduler(simulator, clock) as scheduler:
        await scheduler.add(job("a"))
        with caplog.at_level(logging.INFO, logger="exporter.scheduler"):
            await requests_per_poll(scheduler, simulator, clock, 60, 4)
        assert scheduler.state(KEY).up
    recovered = [r for r in caplog.records if r.getMessage().startswith("recovered")]
    assert [r.getMessage() for r in recovered] == ["recovered after 2 failed polls, down for 2m"]
    assert recovered[0].levelname == "INFO" and recovered[0].__dict__["failed_polls"] == 2
