"""Per-endpoint request budgets over calendar-aligned periods, as Datadog counts them.

Also holds the "blocked until" state a `rate_limit` fault leaves behind: like
the real API, an endpoint that answered 429 keeps answering 429 until its
reset time. The clock is injected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]


class RateLimiter:
    def __init__(
        self,
        limit: int,
        period: int,
        clock: Callable[[], float],
        names: Mapping[str, str] | None = None,
    ) -> None:
        """``names`` maps an endpoint to the X-RateLimit-Name of its budget (default: the
        endpoint's own name)."""
        self.limit = limit
        self.names = dict(names or {})
        self.period = period
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}  # endpoint -> (window index, used)
        self._blocked_until: dict[str, float] = {}

    def block(self, endpoint: str, seconds: int) -> None:
        """Answer 429 on `endpoint` for the next `seconds` (a rate_limit fault)."""
        self._blocked_until[endpoint] = self._clock() + seconds

    def blocked_for(self, endpoint: str) -> int:
        """Seconds left in a fault-imposed block (0 when not blocked)."""
        until = self._blocked_until.get(endpoint)
        if until is None:
            return 0
        left = until - self._clock()
        if left <= 0:
            del self._blocked_until[endpoint]
            return 0
        return max(1, math.ceil(left))

    def unblock(self) -> None:
        """Forget fault-imposed blocks (budgets keep counting)."""
        self._blocked_until.clear()

    def hit(self, endpoint: str) -> Verdict:
        """Count one request against `endpoint`'s budget for the current period."""
        now = self._clock()
        window = int(now // self.period)
        current, used = self._windows.get(endpoint, (window, 0))
        if current != window:
            used = 0
        used += 1
        self._windows[endpoint] = (window, used)
        reset = max(1, math.ceil((window + 1) * self.period - now))
        blocked = self.blocked_for(endpoint)
        remaining = max(0, self.limit - used)
        if blocked:
            remaining, reset = 0, blocked
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Period": str(self.period),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
            "X-RateLimit-Name": self.names.get(endpoint, endpoint),
        }
        return Verdict(allowed=used <= self.limit and not blocked, headers=headers)
