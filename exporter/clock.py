"""The one clock: everything that waits or measures an age takes a :class:`Clock`.

Two scales, never mixed: ``monotonic()`` for deadlines, rate-limit resets and durations (it
never jumps), ``wall()`` for what is shown as Unix time and for ages of data (last success,
staleness). ``sleep`` waits on the monotonic scale, as ``asyncio.sleep`` does (the event
loop's time is ``time.monotonic``). Constructors default to :data:`SYSTEM_CLOCK`; tests pass
a clock of their own instead of patching ``time``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a scale that never jumps: deadlines and durations."""
        ...

    def wall(self) -> float:
        """Unix time: timestamps shown to users and ages of data."""
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
