"""Polling against the simulator: publish, fail, retry, wait out 429s, keep and drop data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from exporter.collectors.connections import ConnectionsJob
from exporter.config.schema import ConnectionsQuery
from exporter.scheduler import Backoff, PollPolicy, QueryState, Scheduler
from exporter.selfmetrics import SelfMetrics
from simulator import Fault, Simulator, SimulatorOptions
from tests.clocks import HandClock, SteppedClock, run_stepped
from tests.helpers import SampleKey, Samples, parse_metrics

from .conftest import deadline, scheduler_against, served


def job(name: str, **settings: object) -> ConnectionsJob:
    return ConnectionsJob(ConnectionsQuery(name=name, group_by=["client_service"], **settings))


def query_series(samples: Samples, query: str) -> set[SampleKey]:
    return {k for k in samples if k[0].startswith("datadog_cnm_") and ("query", query) in k[1]}


async def test_good_poll_publishes_series_and_marks_up(polling: Scheduler) -> None:
    await polling.add(job("a"))
    await polling.poll_once(("connections", "a"), deadline(5))
    samples = served(polling)
    assert query_series(samples, "a")
    up = ("datadog_exporter_up", frozenset({("collector", "connections"), ("query", "a")}))
    assert samples[up] == 1
    state = polling.state(("connections", "a"))
    assert state.series == len(query_series(samples, "a"))
    assert state.last_success is not None and abs(state.last_success - time.time()) < 5


async def test_failing_query_keeps_last_good_data_and_spares_the_other(
    polling: Scheduler, simulator: Simulator
) -> None:
    await polling.add(job("a"), job("b", tags=["client_env:prod"]))
    for name in ("a", "b"):
        await polling.poll_once(("connections", name), deadline(5))
    before = query_series(served(polling), "a")
    simulator.set_fault("connections", Fault(kind="status", status=400, count=1))
    await polling.poll_once(("connections", "a"), deadline(5))
    await polling.poll_once(("connections", "b"), deadline(5))
    samples = served(polling)
    assert query_series(samples, "a") == before
    assert polling.state(("connections", "a")).up is False
    assert polling.state(("connections", "a")).serving_stale is True
    assert polling.state(("connections", "b")).up is True
    errors = (
        "datadog_exporter_poll_errors_total",
        frozenset({("collector", "connections"), ("query", "a"), ("reason", "http_error")}),
    )
    assert samples[errors] == 1


def retrying_from(base: float) -> PollPolicy:
    return PollPolicy(retry=Backoff(base=base, cap=30.0))


async def test_5xx_is_retried_with_backoff_inside_the_interval(simulator: Simulator) -> None:
    async with scheduler_against(simulator.url, policy=retrying_from(0.2)) as polling:
        await polling.add(job("a"))
        simulator.set_fault("connections", Fault(kind="status", status=502, count=2))
        await polling.poll_once(("connections", "a"), deadline(10))
        assert polling.state(("connections", "a")).up is True
    times = [r.time for r in simulator.request_log if r.endpoint == "connections"]
    assert len(times) == 3


async def test_5xx_gives_up_at_the_deadline_without_a_tight_loop(simulator: Simulator) -> None:
    clock = SteppedClock()
    policy = retrying_from(0.1)
    async with scheduler_against(simulator.url, clock=clock, policy=policy) as polling:
        await polling.add(job("a"))
        simulator.set_fault("connections", Fault(kind="status", status=500))
        started = clock.monotonic()
        poll = asyncio.create_task(polling.poll_once(("connections", "a"), started + 2))
        for _ in range(60):  # 3 s of the clock: the poll gives up within its 2 s
            await until(lambda: poll.done() or clock.sleeping == 1)
            if poll.done():
                break
            clock.advance(0.05)
        await asyncio.wait_for(poll, 10)
        assert clock.monotonic() - started <= 2.5
        assert polling.state(("connections", "a")).up is False
    # Exponential backoff from 0.1s over 2s: a handful of calls, not hundreds.
    assert 1 <= len(simulator.request_log) <= 12


async def test_429_holds_every_query_of_the_endpoint_until_reset(
    simulator_options: SimulatorOptions,
) -> None:
    clock = SteppedClock()  # the simulator's too: it holds the endpoint for the reset
    simulator = Simulator(simulator_options, clock=clock.wall)
    await simulator.start(host="127.0.0.1", port=0)
    try:
        async with scheduler_against(simulator.url, clock=clock) as polling:
            await polling.add(job("a"), job("b"))
            simulator.set_fault("connections", Fault(kind="rate_limit", reset_seconds=2, count=1))
            # 429, its reset beyond the deadline
            await polling.poll_once(("connections", "a"), clock.monotonic() + 1)
            assert polling.state(("connections", "a")).up is False
            # The endpoint is held: this poll must not call at all.
            await polling.poll_once(("connections", "b"), clock.monotonic() + 1)
            assert len(simulator.request_log) == 1
            assert polling.state(("connections", "b")).up is False
            # This one waits for the reset, and calls only then.
            key, until_reset = ("connections", "b"), clock.monotonic() + 10
            poll = asyncio.create_task(polling.poll_once(key, until_reset))
            await until(lambda: clock.sleeping == 1)
            clock.advance(1.9)
            await asyncio.sleep(0.1)
            assert not poll.done() and len(simulator.request_log) == 1
            clock.advance(0.1)
            await asyncio.wait_for(poll, 10)
            assert polling.state(("connections", "b")).up is True
            assert len(simulator.request_log) == 2
    finally:
        await simulator.stop()


async def until(condition: Callable[[], object], within: float = 10.0) -> None:
    for _ in range(int(within / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"not true within {within}s")


async def test_vanished_rows_vanish_on_next_good_poll(
    polling: Scheduler, simulator: Simulator
) -> None:
    await polling.add(job("a"))
    await polling.poll_once(("connections", "a"), deadline(5))
    assert query_series(served(polling), "a")
    simulator.set_fault("connections", Fault(kind="wrong_shape", body={"data": []}, count=1))
    await polling.poll_once(("connections", "a"), deadline(5))
    assert polling.state(("connections", "a")).up is True
    assert query_series(served(polling), "a") == set()


async def test_stale_series_are_dropped_after_stale_after(simulator: Simulator) -> None:
    clock = HandClock()
    async with scheduler_against(simulator.url, clock=clock) as polling:
        await polling.add(job("a", stale_after="1m"))
        await polling.poll_once(("connections", "a"), deadline(5))
        simulator.set_fault("connections", Fault(kind="status", status=400))
        clock.advance(30)
        await polling.poll_once(("connections", "a"), deadline(5))
        assert query_series(served(polling), "a")
        clock.advance(31)
        await polling.poll_once(("connections", "a"), deadline(5))
        assert query_series(served(polling), "a") == set()
        assert polling.state(("connections", "a")).series == 0


async def test_malformed_body_fails_cleanly_as_decode_error(
    polling: Scheduler, simulator: Simulator
) -> None:
    await polling.add(job("a"))
    for kind in ("malformed", "truncated", "wrong_shape"):
        simulator.set_fault("connections", Fault(kind=kind, count=1))
        await polling.poll_once(("connections", "a"), deadline(5))
        assert polling.state(("connections", "a")).up is False
        assert "connections" in (polling.state(("connections", "a")).last_error or "")
    errors = (
        "datadog_exporter_poll_errors_total",
        frozenset({("collector", "connections"), ("query", "a"), ("reason", "decode_error")}),
    )
    assert served(polling)[errors] == 3


async def test_loops_start_spread_and_poll_on_their_interval(simulator: Simulator) -> None:
    clock = SteppedClock()
    policy = PollPolicy(startup_spread=0.5)
    async with scheduler_against(simulator.url, clock=clock, policy=policy) as polling:
        await polling.start([job("a", interval="1s"), job("b", interval="1s")])
        await run_stepped(clock, 3.2, sleepers=3)  # two loops and the sweeper
        await polling.stop()
    # Two queries, first polls within 0.5s, then one per second each: 6 calls, give or take
    # the one in flight at the edges.
    count = len(simulator.request_log)
    assert 5 <= count <= 8, count


async def test_rows_over_max_series_are_dropped_counted_and_logged(
    polling: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    await polling.add(job("capped", limit=50, max_series=40))
    with caplog.at_level("WARNING", logger="exporter.scheduler"):
        await polling.poll_once(("connections", "capped"), deadline(5))
    samples = served(polling)
    labels = frozenset({("collector", "connections"), ("query", "capped")})
    series = query_series(samples, "capped")
    assert 0 < len(series) <= 40
    dropped = samples[("datadog_exporter_dropped_rows_total", labels)]
    assert dropped > 0
    assert samples[("datadog_exporter_series", labels)] == len(series)
    (record,) = [r for r in caplog.records if "max_series" in r.getMessage()]
    assert record.dropped_rows == dropped  # type: ignore[attr-defined]

    # The next poll drops again, and says so again.
    await polling.poll_once(("connections", "capped"), deadline(5))
    assert served(polling)[("datadog_exporter_dropped_rows_total", labels)] == 2 * dropped


async def test_unreadable_numbers_are_left_out_counted_and_logged_once_per_poll(
    polling: Scheduler, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Two values beyond float64 in one answer: the poll succeeds without those two samples."""
    await polling.add(job("a"))
    rows = [
        '{"attributes":{"group_bys":{"client_service":["web"]},"tcp_resets":1e999,'
        '"tcp_timeouts":3,"rtt_micro_seconds":' + "9" * 400 + "}}",
        '{"attributes":{"group_bys":{"client_service":["db"]},"tcp_resets":2}}',
    ]
    body = ('{"data":[' + ",".join(rows) + "]}").encode()
    labels = frozenset({("collector", "connections"), ("query", "a")})
    for poll in (1, 2):
        simulator.set_fault("connections", Fault(kind="raw", raw_body=body, count=1))
        with caplog.at_level("WARNING", logger="exporter.scheduler"):
            caplog.clear()
            await polling.poll_once(("connections", "a"), deadline(5))
        samples = served(polling)
        assert samples[("datadog_exporter_up", labels)] == 1
        assert {(name, dict(k)["client_service"]) for name, k in query_series(samples, "a")} == {
            ("datadog_cnm_tcp_timeouts", "web"),
            ("datadog_cnm_tcp_resets", "db"),
        }
        assert samples[("datadog_exporter_invalid_values_total", labels)] == 2 * poll
        (record,) = caplog.records
        assert "float64" in record.getMessage()
        assert record.invalid_values == 2  # type: ignore[attr-defined]


def test_a_removed_query_takes_its_loss_counters_with_it() -> None:
    metrics = SelfMetrics()
    for name in ("gone", "kept"):
        metrics.show_query(QueryState("connections", name, "connections", 60.0, 300.0))
    for name, count in (("gone", 3), ("kept", 1)):
        metrics.rows_dropped(("connections", name), count)
        metrics.values_left_out(("connections", name), count)
    metrics.forget_query(("connections", "gone"))
    samples = parse_metrics(metrics.render().decode())
    assert not [key for key in samples if ("query", "gone") in key[1]]
    kept = frozenset({("collector", "connections"), ("query", "kept")})
    assert samples[("datadog_exporter_dropped_rows_total", kept)] == 1
    assert samples[("datadog_exporter_invalid_values_total", kept)] == 1
