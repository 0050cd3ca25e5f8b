"""Poll loops cannot die, and the truth is told: unexpected exceptions are failed polls, a
loop that ends anyway is restarted and counted, and a query whose polls stop coming is shown
late and down, its series dropped after stale_after, by the clock alone."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from exporter.clock import Clock
from exporter.collectors.protocol import ApiRequest
from exporter.exposition import Rendered
from exporter.logs import LogfmtFormatter, Redactor
from exporter.scheduler import Backoff, PollPolicy, Scheduler
from exporter.server import ServerParts, create_app
from simulator import Fault, Simulator, SimulatorOptions
from tests.clocks import HandClock, SteppedClock

from .conftest import API_KEY, deadline, scheduler_against, served
from .test_faults import error_counts
from .test_scheduler import job, query_series

Sleep = Callable[[float], Awaitable[None]]
QUICK = PollPolicy(restart=Backoff(base=0.05, cap=0.2), sweep_interval=0.02)
AT_ONCE = PollPolicy(startup_spread=0.0, restart=QUICK.restart, sweep_interval=0.02)


async def fast_sleep(seconds: float) -> None:
    """Every wait shortened: a 1s schedule runs in a few milliseconds."""
    await asyncio.sleep(min(seconds, 0.02))


class RenderFails:
    """A real connections query whose next renders raise the given exceptions, one per poll,
    then render Datadog's answers as usual: a stand-in for a bug nobody expected."""

    collector = "connections"
    endpoint = "connections"
    account = "default"

    def __init__(self, name: str, errors: list[BaseException], **settings: Any) -> None:
        self.inner = job(name, **settings)
        self.errors = errors
        self.name = name
        self.interval = self.inner.interval
        self.window = self.inner.window
        self.effective_stale_after = self.inner.effective_stale_after
        self.label_names = self.inner.label_names
        self.empty_answer_is_news = self.inner.empty_answer_is_news

    def request(self, now: float) -> ApiRequest:
        return self.inner.request(now)

    def decode(self, body: bytes) -> Any:
        return self.inner.decode(body)

    def render(self, answer: Any) -> Rendered:
        if self.errors:
            raise self.errors.pop(0)
        return self.inner.render(answer)


@asynccontextmanager
async def scheduling(
    simulator: Simulator,
    *,
    request_timeout: float = 1.0,
    clock: Clock | None = None,
    policy: PollPolicy = QUICK,
) -> AsyncIterator[Scheduler]:
    """A scheduler polling the simulator, not started; by default on a clock whose waits
    are all short and whose wall clock moves only by hand."""
    async with scheduler_against(
        simulator.url,
        request_timeout=request_timeout,
        clock=clock or HandClock(sleep=fast_sleep),
        policy=policy,
    ) as scheduler:
        yield scheduler


async def until(condition: Callable[[], object], within: float = 10.0) -> None:
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {within}s")


def labels(query: str) -> frozenset[tuple[str, str]]:
    return frozenset({("collector", "connections"), ("query", query)})


def self_metric(scheduler: Scheduler, name: str, query: str) -> float | None:
    return served(scheduler).get((name, labels(query)))


def restarts(scheduler: Scheduler, query: str) -> float | None:
    return self_metric(scheduler, "datadog_exporter_poll_loop_restarts_total", query)


def poll_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("poll ")]


async def test_unexpected_exceptions_are_internal_errors_and_the_loop_polls_on(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Exceptions no decoder should raise (and a bug's ValueError) fail one poll each as
    internal_error, logged once in one line without a traceback; the same loop then
    publishes the next good answer."""
    flaky = RenderFails(
        "a",
        [RecursionError("maximum recursion depth exceeded"), ValueError("bad\nvalue")],
        interval="1s",
    )
    async with scheduling(simulator) as scheduler:
        with caplog.at_level(logging.INFO, logger="exporter"):
            await scheduler.start([flaky])
            await until(lambda: error_counts(scheduler, "a").get("internal_error") == 1)
            assert scheduler.state(("connections", "a")).up is False
            assert self_metric(scheduler, "datadog_exporter_up", "a") == 0
            await until(lambda: scheduler.state(("connections", "a")).up)
        samples = served(scheduler)
        assert query_series(samples, "a")
        assert error_counts(scheduler, "a") == {"internal_error": 2}
        assert restarts(scheduler, "a") == 0  # the loop itself never ended
        assert scheduler.state(("connections", "a")).last_error is None

    failures = [r for r in caplog.records if r.getMessage() == "poll failed"]
    assert [getattr(r, "reason", None) for r in failures] == ["internal_error"] * 2
    assert getattr(failures[0], "error", "") == (
        "internal error: RecursionError: maximum recursion depth exceeded"
    )
    assert not any(hasattr(r, "traceback") for r in failures)  # info level: no traceback
    formatter = LogfmtFormatter(Redactor())
    lines = [formatter.format(record) for record in failures]
    assert all("\n" not in line for line in lines)
    assert "RecursionError" in lines[0] and "ValueError: bad | value" in lines[1]


async def test_internal_error_traceback_is_logged_at_debug_on_one_line(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = RenderFails("a", [KeyError("group_bys")], interval="1s")
    async with scheduling(simulator) as scheduler:
        with caplog.at_level(logging.DEBUG, logger="exporter"):
            await scheduler.start([flaky])
            await until(lambda: error_counts(scheduler, "a").get("internal_error") == 1)
    (failure,) = [r for r in caplog.records if r.getMessage() == "poll failed"]
    trace = getattr(failure, "traceback", "")
    assert trace.startswith("Traceback") and "in render" in trace and "KeyError" in trace
    line = LogfmtFormatter(Redactor()).format(failure)
    assert "\n" not in line and "traceback=" in line


async def test_an_internal_error_message_never_shows_a_key(simulator: Simulator) -> None:
    flaky = RenderFails("a", [RuntimeError(f"header DD-API-KEY: {API_KEY}")], interval="1s")
    async with scheduling(simulator) as scheduler:
        await scheduler.start([flaky])
        await until(lambda: error_counts(scheduler, "a").get("internal_error") == 1)
        error = scheduler.state(("connections", "a")).last_error or ""
    assert "RuntimeError" in error and API_KEY not in error


class FailingSleep:
    """The poll loops' waits, failing on the given ones (1-based) once waited: a bug between
    two polls. Waits of other tasks (the sweeper's) only wait."""

    def __init__(self, failing: set[int], sleep: Sleep = fast_sleep) -> None:
        self.failing = failing
        self.sleep = sleep
        self.woke: list[float] = []  # when each of the loops' waits ended

    async def __call__(self, seconds: float) -> None:
        await self.sleep(seconds)
        task = asyncio.current_task()
        if task is None or not task.get_name().startswith("poll "):
            return
        self.woke.append(time.monotonic())
        if len(self.woke) in self.failing:
            raise RuntimeError("bug in the loop")


async def test_a_loop_that_ends_is_restarted_counted_and_logged(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    sleep = FailingSleep({2})  # fails after the first poll
    async with scheduling(simulator, clock=HandClock(sleep)) as scheduler:
        with caplog.at_level(logging.INFO, logger="exporter"):
            await scheduler.start([job("a", interval="1s")])
            await until(lambda: restarts(scheduler, "a") == 1)
            polled = len(simulator.requests_to("connections"))
            await until(lambda: len(simulator.requests_to("connections")) > polled + 1)
        assert restarts(scheduler, "a") == 1
        assert scheduler.state(("connections", "a")).up is True
        assert len(poll_tasks()) == 1
    (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert line.getMessage() == "poll loop ended unexpectedly; restarting it"
    assert getattr(line, "query", None) == "a"
    assert getattr(line, "error", None) == "RuntimeError: bug in the loop"


async def test_restarts_back_off_while_the_loop_keeps_ending(simulator: Simulator) -> None:
    """A loop that fails as soon as it starts is restarted after 0.05, 0.1, 0.2, 0.2 s (the
    cap), never in a tight loop; once it polls again, it polls as usual."""
    sleep = FailingSleep({1, 2, 3, 4}, asyncio.sleep)  # waits as long as asked
    async with scheduling(simulator, clock=HandClock(sleep), policy=AT_ONCE) as scheduler:
        await scheduler.start([job("a", interval="1s")])
        await until(lambda: scheduler.state(("connections", "a")).up)
        assert restarts(scheduler, "a") == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(sleep.woke[:5])]
    for gap, backoff in zip(gaps, [0.05, 0.1, 0.2, 0.2], strict=True):
        assert gap >= backoff * 0.9, gaps
    assert max(gaps) < 1.0, gaps


async def test_a_loop_cancelled_from_elsewhere_is_restarted(simulator: Simulator) -> None:
    async with scheduling(simulator) as scheduler:
        await scheduler.start([job("a", interval="1s")])
        await until(lambda: scheduler.state(("connections", "a")).up)
        (task,) = poll_tasks()
        task.cancel()
        await until(lambda: restarts(scheduler, "a") == 1)
        polled = len(simulator.requests_to("connections"))
        await until(lambda: len(simulator.requests_to("connections")) > polled)
        (restarted,) = poll_tasks()
        assert restarted is not task


async def test_stop_and_reload_are_not_restarts(simulator: Simulator) -> None:
    async with scheduling(simulator) as scheduler:
        await scheduler.start([job(name, interval="1s") for name in ("a", "b", "c")])
        await until(lambda: all(state.up for state in scheduler.query_states()))
        await scheduler.apply([job("a", interval="1s"), job("b", interval="2s")])
        await asyncio.sleep(0.2)  # a restart would come after 0.05 s
        assert restarts(scheduler, "a") == 0
        assert restarts(scheduler, "b") == 0
        assert restarts(scheduler, "c") is None  # removed with its query
        await scheduler.stop()
        await asyncio.sleep(0.2)
        assert poll_tasks() == []


async def landing(scheduler: Scheduler) -> str:
    context = ServerParts(
        scheduler.store, scheduler.metrics, scheduler.query_states, clock=scheduler.clock
    )
    async with TestClient(TestServer(create_app(context), host="127.0.0.1")) as client:
        response = await client.get("/")
        assert response.status == 200
        return await response.text()


async def test_a_hung_upstream_makes_the_query_late_then_drops_its_series_by_the_clock(
    simulator: Simulator,
) -> None:
    """No poll completes while Datadog hangs: past two intervals the query is late (down,
    still serving its last good series), past stale_after its series are gone; when the
    hung poll ends, the loop carries on by itself."""
    clock = HandClock()
    async with scheduling(simulator, request_timeout=60.0, clock=clock) as scheduler:
        await scheduler.start([job("a", interval="1s", stale_after="1m")])
        state = scheduler.state(("connections", "a"))
        await until(lambda: state.up)
        good = query_series(served(scheduler), "a")
        assert good and "<td>up</td>" in await landing(scheduler)

        # The next poll is about a second away; it meets the hang.
        before = len(simulator.requests_to("connections"))
        simulator.set_fault("connections", Fault(kind="hang", seconds=3, count=1))
        await until(lambda: len(simulator.requests_to("connections")) > before)
        hung = len(simulator.requests_to("connections"))
        completed = state.last_completed

        clock.advance(3)  # three intervals without a finished poll
        await until(lambda: state.late)
        samples = served(scheduler)
        assert samples[("datadog_exporter_up", labels("a"))] == 0
        assert samples[("datadog_exporter_serving_stale", labels("a"))] == 1
        assert query_series(samples, "a") == good
        assert "<td>late (serving last good data)</td>" in await landing(scheduler)

        clock.advance(58)  # the last good poll is now 61 s old: past stale_after
        await until(lambda: not query_series(served(scheduler), "a"))
        samples = served(scheduler)
        assert samples[("datadog_exporter_up", labels("a"))] == 0
        assert samples[("datadog_exporter_serving_stale", labels("a"))] == 0
        assert samples[("datadog_exporter_series", labels("a"))] == 0
        assert "<td>late</td>" in await landing(scheduler)
        # All of it without a poll completing: the hung request is still the last one.
        assert len(simulator.requests_to("connections")) == hung
        assert state.last_completed == completed
        assert error_counts(scheduler, "a") == {}

        await until(lambda: state.up, within=10)  # the hang ends; polls come again
        assert query_series(served(scheduler), "a")
        assert "<td>up</td>" in await landing(scheduler)


async def test_a_failed_query_drops_its_series_at_stale_after_without_another_poll(
    simulator: Simulator,
) -> None:
    """Polled once an hour, a query that failed loses its series when they pass stale_after,
    not an hour later at its next poll."""
    clock = HandClock()
    async with scheduling(simulator, clock=clock, policy=AT_ONCE) as scheduler:
        await scheduler.start([job("a", interval="1h", stale_after="5m")])
        key = ("connections", "a")
        state = scheduler.state(key)
        await until(lambda: state.up)  # the first poll, at once; the next is an hour away
        assert query_series(served(scheduler), "a")
        simulator.set_fault("connections", Fault(kind="status", status=400))
        clock.advance(60)
        await scheduler.poll_once(key, deadline(5))  # one more, outside the schedule
        assert state.up is False and state.serving_stale is True
        polled = len(simulator.requests_to("connections"))

        clock.advance(241)  # the last good poll is 301 s old
        # The body is swapped in a worker thread, then the state follows: wait for both.
        await until(lambda: not query_series(served(scheduler), "a") and state.series == 0)
        assert state.serving_stale is False and state.series == 0
        assert len(simulator.requests_to("connections")) == polled


async def test_a_healthy_query_keeps_its_series_whatever_its_stale_after(
    simulator: Simulator,
) -> None:
    """stale_after counts while a query is down; between two good polls nothing is dropped,
    even when stale_after is shorter than the interval."""
    clock = HandClock()
    async with scheduling(simulator, clock=clock, policy=AT_ONCE) as scheduler:
        await scheduler.start([job("a", interval="10s", stale_after="1s")])
        key = ("connections", "a")
        state = scheduler.state(key)
        await until(lambda: state.up)  # the first poll, at once; the next is 10 s away
        clock.advance(5)
        await asyncio.sleep(0.2)  # several sweeps
        assert state.up is True and not state.late
        assert query_series(served(scheduler), "a")
        assert "<td>up</td>" in await landing(scheduler)


async def test_a_wall_clock_step_forward_while_polls_succeed_changes_nothing(
    simulator: Simulator,
) -> None:
    """The wall clock jumps two hours ahead (NTP after a VM resumes) while polls succeed
    every 2 s: the query stays up with all its series at every moment, never late."""
    clock = SteppedClock()
    async with scheduling(simulator, clock=clock, policy=AT_ONCE) as scheduler:
        await scheduler.start([job("a", interval="2s", stale_after="20s")])
        state = scheduler.state(("connections", "a"))
        await until(lambda: state.up and clock.sleeping == 2)
        good = query_series(served(scheduler), "a")
        assert good
        for second in range(1, 41):
            if second == 5:
                clock.step_wall(2 * 3600)
            clock.advance(1)
            await until(lambda: clock.sleeping == 2)  # the loop and the sweeper wait again
            samples = served(scheduler)
            assert samples[("datadog_exporter_up", labels("a"))] == 1, second
            assert query_series(samples, "a") == good, second
            assert not state.late and state.series
        assert [r.status for r in simulator.requests_to("connections")] == [200] * 21
        assert state.last_success == clock.wall()  # what is shown is the wall clock
        assert "<td>up</td>" in await landing(scheduler)
        assert "<td>0s ago</td>" in await landing(scheduler)


async def test_a_wall_clock_step_back_while_polls_fail_drops_series_at_stale_after(
    simulator: Simulator,
) -> None:
    """The wall clock jumps two hours back while polls fail: the last good series are
    served for stale_after (20 s) of real time and dropped then, not two hours later."""
    clock = SteppedClock()
    async with scheduling(simulator, clock=clock, policy=AT_ONCE) as scheduler:
        await scheduler.start([job("a", interval="5s", stale_after="20s")])
        state = scheduler.state(("connections", "a"))
        await until(lambda: state.up and clock.sleeping == 2)
        simulator.set_fault("connections", Fault(kind="status", status=400))
        clock.step_wall(-2 * 3600)
        for second in range(1, 21):  # the last good poll is up to 20 s old: still served
            clock.advance(1)
            await until(lambda: clock.sleeping == 2)
            assert query_series(served(scheduler), "a"), second
        assert not state.up and state.serving_stale
        clock.advance(1)  # 21 s
        await until(lambda: not query_series(served(scheduler), "a") and state.series == 0)
        assert served(scheduler)[("datadog_exporter_serving_stale", labels("a"))] == 0


def polls_by_limit(simulator: Simulator) -> dict[int, list[int | None]]:
    """The statuses of the connections requests, by the query's row limit (its identity)."""
    seen: dict[int, list[int | None]] = {}
    for request in simulator.requests_to("connections"):
        seen.setdefault(int(request.query["limit"]), []).append(request.status)
    return seen


async def test_schedules_run_on_the_injected_clock(simulator: Simulator) -> None:
    """Every wait and every age is the injected clock's: two hours of schedule pass in
    moments, each query polled once per interval on the dot, none ever late."""
    clock = SteppedClock()
    async with scheduling(simulator, clock=clock, policy=AT_ONCE) as scheduler:
        await scheduler.start(
            [job("hourly", interval="1h", limit=11), job("half_hourly", interval="30m", limit=12)]
        )
        for _ in range(24):  # two hours, five minutes at a time
            await until(lambda: clock.sleeping == 3)  # both loops and the sweeper wait
            clock.advance(300)
        await until(lambda: clock.sleeping == 3)
        assert polls_by_limit(simulator) == {11: [200] * 3, 12: [200] * 5}
        for name in ("hourly", "half_hourly"):
            state = scheduler.state(("connections", name))
            assert state.up and not state.late
            assert state.last_success == clock.wall()  # both polled at the two-hour mark


async def test_a_429_is_waited_out_on_the_injected_clock(
    simulator_options: SimulatorOptions,
) -> None:
    """Datadog answers 429 with a two-minute reset: the poll waits exactly that long on the
    clock, then goes through within its interval."""
    clock = SteppedClock()
    limited = Simulator(simulator_options, clock=clock.wall)
    await limited.start(host="127.0.0.1", port=0)
    limited.set_fault("connections", Fault(kind="rate_limit", reset_seconds=120, count=1))
    try:
        async with scheduling(limited, clock=clock, policy=AT_ONCE) as scheduler:
            await scheduler.start([job("a", interval="5m")])
            state = scheduler.state(("connections", "a"))
            await until(lambda: clock.sleeping == 2)  # the poll waits for the reset
            assert [r.status for r in limited.requests_to("connections")] == [429]
            assert 120.0 in clock.slept
            clock.advance(119)
            await asyncio.sleep(0.1)
            assert len(limited.requests_to("connections")) == 1 and not state.up
            clock.advance(1)
            await until(lambda: state.up)
            assert [r.status for r in limited.requests_to("connections")] == [429, 200]
            assert state.last_success == clock.wall()
            assert error_counts(scheduler, "a") == {}  # one poll, late but good
    finally:
        await limited.stop()


async def test_a_new_querys_loss_counters_are_shown_at_zero(simulator: Simulator) -> None:
    """Dropped rows, invalid values and loop restarts are served as 0 from a query's start,
    so an increase() alert sees the first one (a counter born at 1 shows no increase)."""
    async with scheduling(simulator, policy=AT_ONCE) as scheduler:
        await scheduler.start([job("a", interval="1h")])
        await until(lambda: scheduler.state(("connections", "a")).up)
        for name in (
            "datadog_exporter_dropped_rows_total",
            "datadog_exporter_invalid_values_total",
            "datadog_exporter_poll_loop_restarts_total",
        ):
            assert self_metric(scheduler, name, "a") == 0, name
