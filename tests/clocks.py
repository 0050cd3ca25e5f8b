"""Clocks for tests: what the exporter's constructors take instead of patching ``time``."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable


class HandClock:
    """The system's monotonic time plus what the test added (:meth:`advance`), a wall clock
    that stands still until the test moves it (``now``, :meth:`advance`,
    :meth:`step_wall`), and ``sleep`` (default: the event loop's, on the system's time)."""

    def __init__(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.now = time.time()
        self.ahead = 0.0  # seconds the monotonic scale is ahead of the system's
        self._sleep = sleep

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    def advance(self, seconds: float) -> None:
        """Time passes: both scales move on by ``seconds`` (waits already begun do not end
        sooner: they run on the system's time)."""
        self.ahead += seconds
        self.now += seconds

    def step_wall(self, seconds: float) -> None:
        """The wall clock alone is set forward (or back, ``seconds`` < 0): no time passes."""
        self.now += seconds

    def wall(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)


class SteppedClock:
    """Virtual time: both scales move only when the test calls :meth:`advance`, and a sleep
    ends when the clock has been advanced past it. Hours pass in milliseconds.
    :meth:`step_wall` sets the wall clock alone, either way, as NTP does."""

    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.elapsed = 0.0
        self._wall_at_start = wall
        self.wall_steps = 0.0  # the sum of step_wall()s: how far wall() is off elapsed time
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.slept: list[float] = []  # every wait asked for, in order

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def wall(self) -> float:
        return self._wall_at_start + self.elapsed + self.wall_steps

    def step_wall(self, seconds: float) -> None:
        """The wall clock alone is set forward (or back, ``seconds`` < 0), as NTP or an
        operator does: no time passes, the monotonic scale and every wait stay as they are."""
        self.wall_steps += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.monotonic() + seconds, next(self._order), wake))
        await wake

    @property
    def sleeping(self) -> int:
        """Waits not ended yet (cancelled ones do not count)."""
        return sum(1 for _, _, wake in self._sleepers if not wake.done())

    def advance(self, seconds: float) -> None:
        """Move both scales on; every wait that ends by then ends (in order)."""
        self.elapsed += seconds
        while self._sleepers and self._sleepers[0][0] <= self.monotonic():
            _, _, wake = heapq.heappop(self._sleepers)
            if not wake.done():
                wake.set_result(None)


class FastForwardClock:
    """Virtual time that jumps over every wait: a sleep ends at once with the clock moved on
    by its length. For code that only sleeps (retries, backoffs), never waits on others."""

    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.elapsed = 0.0
        self._wall_at_start = wall
        self.slept: list[float] = []  # every wait asked for, in order

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def wall(self) -> float:
        return self._wall_at_start + self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.elapsed += max(0.0, seconds)
        await asyncio.sleep(0)


async def run_stepped(
    clock: SteppedClock, seconds: float, sleepers: int, step: float = 0.05, within: float = 10.0
) -> None:
    """Let ``seconds`` of virtual time pass in steps of ``step``: before each step (and after
    the last) wait, in real time, until ``sleepers`` tasks wait on the clock, so every poll
    a step woke has run its real I/O and is waiting again. Raises if they do not settle."""
    for _ in range(round(seconds / step)):
        await _settled(clock, sleepers, within)
        clock.advance(step)
    await _settled(clock, sleepers, within)


async def _settled(clock: SteppedClock, sleepers: int, within: float) -> None:
    for _ in range(int(within / 0.005)):
        if clock.sleeping == sleepers:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{clock.sleeping} tasks wait on the clock, not {sleepers}")
