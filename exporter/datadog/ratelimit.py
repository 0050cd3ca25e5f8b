"""Rate-limit state of one account's endpoints, and its one owner: :class:`RateLimits`.

Datadog limits each endpoint of each organisation on its own. The client records here what
every answer says (``X-RateLimit-*`` headers, calls in flight, a 429's block); whoever wants
to call asks :meth:`RateLimits.acquire` first, which waits for the endpoint's next slot or
raises :class:`NoSlot` saying why not; ``/metrics`` reads :meth:`RateLimits.views`. Where a
paced call goes is the pure policy of :func:`budget.next_slot`. Nothing else reads or writes
this state.

All times are on the injected clock's monotonic scale; only the views convert to Unix time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from ..clock import SYSTEM_CLOCK, Clock
from ..config.schema import DEFAULT_ACCOUNT
from ..selfmetrics import RateLimitView
from .budget import next_slot

log = logging.getLogger(__name__)

# Without a usable reset header, a 429 blocks the endpoint for its period, or this long.
DEFAULT_BLOCK_SECONDS = 60.0
# A 429 blocks for at least this long: one with reset 0 must not turn into a tight loop.
MIN_BLOCK_SECONDS = 1.0
# No answer keeps its endpoint waiting longer than this, whatever its reset header says (a
# 429's block, or a period's end with no call left): a hostile or garbled reset must not
# silence an endpoint for years. If the limit still holds after it, the next call gets
# another 429 or another empty budget and waits again; that costs one call an hour.
MAX_BLOCK_SECONDS = 3600.0
# Header values beyond this (calls or seconds) are not ones Datadog sends; read as unreadable.
MAX_HEADER_VALUE = 10**9


@dataclass(frozen=True, slots=True)
class EndpointLimits:
    """What is known of one endpoint's rate limit now (monotonic times)."""

    limit: int | None  # calls per period (X-RateLimit-Limit)
    remaining: int | None  # calls left in the period, by the last answer
    period: float | None  # seconds
    reset_at: float | None  # when the current period ends
    blocked_until: float  # no call before this, after a 429 (0: never blocked)


class NoSlot(Exception):
    """No call to the endpoint can go before the deadline. ``reason`` is ``rate_limited``
    (a 429 blocks it) or ``rate_budget`` (what is left of the period is spoken for)."""

    def __init__(self, reason: Literal["rate_limited", "rate_budget"], message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class _Endpoint:
    limit: int | None = None
    remaining: int | None = None
    period: float | None = None
    reset_at: float | None = None
    blocked_until: float = 0.0
    free_at: float = 0.0  # earliest next call while pacing a low budget
    in_flight: int = 0  # requests sent and not yet answered

    @property
    def available(self) -> int | None:
        """Calls left for new requests: the last answer's count minus calls still in flight.

        An answer's count may or may not include calls sent alongside it; assuming it does
        not errs on the side of never bursting into a 429.
        """
        if self.remaining is None:
            return None
        return max(0, self.remaining - self.in_flight)


class RateLimits:
    """The rate-limit state of every endpoint of one account (one client)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK):
        self.clock = clock
        self._endpoints: dict[str, _Endpoint] = {}

    def _endpoint(self, endpoint: str) -> _Endpoint:
        return self._endpoints.setdefault(endpoint, _Endpoint())

    def forget(self) -> None:
        """Start afresh (the account now talks to another base URL)."""
        self._endpoints.clear()

    # -- what the client records -------------------------------------------------------------

    @contextmanager
    def sending(self, endpoint: str) -> Iterator[None]:
        """Count one request to ``endpoint`` as in flight while the block runs."""
        state = self._endpoint(endpoint)
        state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1

    def record(self, endpoint: str, headers: Mapping[str, str]) -> None:
        """What an answer's ``X-RateLimit-*`` headers say (absent or unreadable ones: nothing)."""
        state = self._endpoint(endpoint)
        state.limit = _int_header(headers.get("X-RateLimit-Limit"), state.limit)
        state.remaining = _int_header(headers.get("X-RateLimit-Remaining"), state.remaining)
        period = _int_header(headers.get("X-RateLimit-Period"), None)
        if period is not None:
            state.period = float(period)
        reset = _int_header(headers.get("X-RateLimit-Reset"), None)
        if reset is not None:
            state.reset_at = self.clock.monotonic() + min(reset, MAX_BLOCK_SECONDS)

    def record_429(self, endpoint: str, headers: Mapping[str, str]) -> tuple[float, float]:
        """Block ``endpoint`` after a 429 for ``X-RateLimit-Reset`` seconds (else
        ``Retry-After``'s, else the period or a minute); return the wait it asks for and the
        time the endpoint is blocked until."""
        state = self._endpoint(endpoint)
        reset = _int_header(headers.get("X-RateLimit-Reset"), None)
        if reset is None:
            # No Datadog header: the standard one, in its delay-seconds form, when sent.
            reset = _int_header(headers.get("Retry-After"), None)
        if reset is not None and reset >= 0:
            wait = float(reset)
        else:
            wait = state.period or DEFAULT_BLOCK_SECONDS
        wait = min(max(wait, MIN_BLOCK_SECONDS), MAX_BLOCK_SECONDS)
        state.blocked_until = max(state.blocked_until, self.clock.monotonic() + wait)
        return wait, state.blocked_until

    # -- what callers ask --------------------------------------------------------------------

    async def acquire(
        self, endpoint: str, deadline: float | None = None, *, reserve: int = 0
    ) -> float:
        """Wait until a call to ``endpoint`` may go: past any 429 block, then at this call's
        share of a running-low budget; return the seconds it waited for that (0.0: it did not
        wait). Raises NoSlot instead when that moment is not before ``deadline`` (monotonic;
        None: no deadline, wait as long as it takes).

        ``reserve`` calls of the period are left unused: a caller with several requests in
        flight reads answers out of order, so the last count it read may be up to that many
        calls behind Datadog's."""
        state = self._endpoint(endpoint)
        waited = 0.0
        wait = state.blocked_until - self.clock.monotonic()
        if wait > 0:
            if deadline is not None and self.clock.monotonic() + wait >= deadline:
                raise NoSlot(
                    "rate_limited",
                    f"{endpoint}: rate limited by Datadog for another {wait:.0f}s",
                )
            await self.clock.sleep(wait)
            waited += wait
            state = self._endpoint(endpoint)  # forget() may have run meanwhile
        now = self.clock.monotonic()
        available = state.available
        if available is not None:
            available = max(0, available - reserve)
        slot = next_slot(now, state.free_at, available, state.limit, state.reset_at)
        wait = slot.at - now
        if wait > 0 and deadline is not None and self.clock.monotonic() + wait >= deadline:
            raise NoSlot(
                "rate_budget",
                f"{endpoint}: {available} of {state.limit or '?'} calls left for "
                f"{(state.reset_at or now) - now:.0f}s; next free slot in {wait:.0f}s",
            )
        state.free_at = slot.next_free
        if wait > 0:
            log.debug(
                "pacing a low rate-limit budget",
                extra={"endpoint": endpoint, "wait": round(wait, 2)},
            )
            await self.clock.sleep(wait)
            waited += wait
        return waited

    def limits(self, endpoint: str) -> EndpointLimits:
        state = self._endpoint(endpoint)
        return EndpointLimits(
            state.limit, state.remaining, state.period, state.reset_at, state.blocked_until
        )

    def views(self, account: str = DEFAULT_ACCOUNT) -> list[RateLimitView]:
        """Every endpoint seen so far, for /metrics (a 429's block as Unix time)."""
        offset = self.clock.wall() - self.clock.monotonic()
        now = self.clock.monotonic()
        views = []
        for endpoint in sorted(self._endpoints):
            state = self.limits(endpoint)
            blocked = state.blocked_until + offset if state.blocked_until > now else None
            views.append(
                RateLimitView(
                    account, endpoint, state.limit, state.remaining, state.period, blocked
                )
            )
        return views


def _int_header(raw: str | None, default: int | None) -> int | None:
    """A header's whole number; ``default`` when absent or unreadable (not a number, not
    finite, negative or absurdly large), so no header can raise or poison the budget."""
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        return default
    if not 0 <= value <= MAX_HEADER_VALUE:  # also False for NaN; inf is beyond the bound
        return default
    return int(value)
