"""The one clock: everything that waits or measures an age takes a :class:`Clock`.

Two scales, never mixed: ``monotonic()`` for every deadline, duration and age (rate-limit
resets, lateness, how old a query's series are, "last success 5m ago"): it never jumps.
``wall()`` only for what is shown or sent as Unix time (timestamps on /metrics, ``from``/``to``
of a request). The wall clock can be stepped by hours either way (NTP after a VM resumes, an
operator's ``date -s``); an age taken from it would make a healthy query late or keep a dead
one's series for hours. ``sleep`` waits on the monotonic scale, as ``asyncio.sleep`` does (the
event loop's time is ``time.monotonic``). Constructors default to :data:`SYSTEM_CLOCK`; tests pass
a clock of their own instead of patching ``time``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a scale that never jumps: deadlines, durations and ages."""
        ...

    def wall(self) -> float:
        """Unix time: only what is shown or sent as a time of day, never an age."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the monotonic scale."""
        ...


class SystemClock:
    """The process's clocks and the event loop's sleep."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
