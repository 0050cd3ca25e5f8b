"""How polls are spaced in time: start-up spread, retries, restarts, sweeps. Pure values.

Every default is what the exporter ships with; tests and the benchmark pass a
:class:`PollPolicy` of their own to the scheduler instead of changing these.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

from ..snapshot import QueryKey


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: ``base * 2^n`` seconds, at most ``cap``."""

    base: float
    cap: float

    def delay(self, attempt: int) -> float:
        # The exponent is bounded so a long streak cannot overflow the float conversion.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def jittered(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, delay(attempt)], so retries of many queries spread."""
        return rng.uniform(0, self.delay(attempt))


@dataclass(frozen=True)
class PollPolicy:
    # The first polls of all queries are spread over at most this long after start-up (and
    # over at most one interval).
    startup_spread: float = 10.0
    # A retryable failure (5xx, timeout, connection error) is retried inside the interval
    # after a jittered wait of up to 1 s, 2, 4, ... at most 30 s.
    retry: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=30.0))
    # A loop that ends is restarted after 1 s, then 2, 4, ... at most 60 s while it keeps
    # ending before finishing a poll; never earlier than its next scheduled poll.
    restart: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=60.0))
    # How often the sweeper compares every query with the clock (lateness, staleness).
    sweep_interval: float = 1.0

    def startup_offset(self, key: QueryKey, interval: float) -> float:
        """A stable offset for a query's first poll, so restarts keep the same spread."""
        spread = min(interval, self.startup_spread)
        return (zlib.crc32(f"{key[0]}/{key[1]}".encode()) % 1000) / 1000 * spread
