"""The one fetch path: slot, fetch, classify, retry. Live polls and backfill windows both
send their requests through :func:`fetch_with_retries`; they differ only in their
:class:`StopRule` (how many requests, until when, whether a 429 counts as one).
``--config.check.online`` is the one caller of the client beside it: it sends one call per
endpoint on purpose and reports that answer, which a retry would hide.

Each request waits for its endpoint's slot in the client's :class:`RateLimits` (a 429's block,
the budget's pacing); a 429 is followed by the next slot (which waits out the block); a 5xx,
timeout or connection error is retried after the Retry-After Datadog sent, else a capped,
jittered backoff; anything else fails at once (a key does not fix itself within seconds).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..clock import Clock
from ..collectors.protocol import ApiRequest
from ..datadog.client import RateLimited, RequestFailed, ServerError
from ..datadog.ratelimit import NoSlot, RateLimits
from .policy import Backoff

log = logging.getLogger(__package__)

# What a request that found no rate-limit slot before its deadline adds to the reason's text.
_SKIPPED = {
    "rate_limited": "; poll skipped",
    "rate_budget": "; poll skipped to stay under the rate limit",
}


class Client(Protocol):
    """What a fetch (and the scheduler) needs of a Datadog client (:class:`DatadogClient` is
    one)."""

    @property
    def rate_limits(self) -> RateLimits: ...

    async def fetch(self, request: ApiRequest) -> bytes:
        """The 2xx body, or an RequestFailed."""
        ...


# The client of an account, by name; raises KeyError for an account it does not know. The
# owner answers with its current clients, so a reload's new clients are used from the next
# request on.
ClientLookup = Callable[[str], Client]


@dataclass(frozen=True)
class StopRule:
    """When a fetch gives up.

    ``max_attempts`` requests at most (a 429 counts only when ``rate_limited_counts``);
    ``deadline`` (monotonic) bounds every wait, a slot's or a retry's: None waits as long as
    it takes (a backfill window has no next tick to give up for). ``reserve`` slots of the
    endpoint's budget are left for answers still in flight (concurrent requests).
    """

    max_attempts: int
    deadline: float | None = None
    rate_limited_counts: bool = True
    reserve: int = 0


class FetchFailed(Exception):
    """A fetch that gave up; ``reason`` is the poll_errors label, ``cause`` the last error of
    the client (None when no slot came before the deadline)."""

    def __init__(self, reason: str, message: str, cause: RequestFailed | None = None):
        super().__init__(message)
        self.reason = reason
        self.cause = cause


@dataclass
class Attempts:
    """What one fetch did, kept by the caller (it is read after a failure too)."""

    sent: int = 0  # requests sent
    slot_waits: int = 0  # slots that were not free at once
    slot_seconds: float = 0.0  # time spent waiting for them


def retry_delay(exc: RequestFailed, attempt: int, retry: Backoff, rng: random.Random) -> float:
    """How long to wait before retrying after the ``attempt``-th counted request (1-based)
    failed with ``exc``: what Datadog asked for in Retry-After, else the jittered backoff."""
    if isinstance(exc, ServerError) and exc.retry_after is not None:
        return exc.retry_after
    return retry.jittered(attempt - 1, rng)


async def fetch_with_retries(
    client: Client,
    request: ApiRequest,
    stop: StopRule,
    *,
    clock: Clock,
    retry: Backoff,
    rng: random.Random,
    attempts: Attempts | None = None,
) -> bytes:
    """The body of the first good answer to ``request``; FetchFailed once ``stop`` says so or
    the failure is not worth retrying."""
    done = attempts if attempts is not None else Attempts()
    counted = 0
    while True:
        if stop.deadline is None:
            _say_block(client.rate_limits, request.endpoint, clock.monotonic())
        try:
            waited = await client.rate_limits.acquire(
                request.endpoint, stop.deadline, reserve=stop.reserve
            )
        except NoSlot as exc:
            raise FetchFailed(exc.reason, str(exc) + _SKIPPED[exc.reason]) from None
        # What acquire slept, not the clock's advance: the await itself takes a little time,
        # and a call that went at once did not wait for the rate limit.
        if waited > 0:
            done.slot_waits += 1
            done.slot_seconds += waited
        done.sent += 1
        try:
            return await client.fetch(request)
        except RateLimited as exc:
            if stop.rate_limited_counts:
                counted += 1
                if counted >= stop.max_attempts:
                    raise FetchFailed(exc.reason, str(exc), exc) from None
            continue  # the next slot waits for the reset, or gives up at the deadline
        except RequestFailed as exc:
            counted += 1
            if exc.retryable and counted < stop.max_attempts:
                delay = retry_delay(exc, counted, retry, rng)
                if stop.deadline is None or clock.monotonic() + delay < stop.deadline:
                    log.debug(
                        "retrying after error",
                        extra={
                            "endpoint": request.endpoint,
                            "error": str(exc),
                            "delay": round(delay, 2),
                        },
                    )
                    await clock.sleep(delay)
                    continue
            raise FetchFailed(exc.reason, str(exc), exc) from None


def _say_block(limits: RateLimits, endpoint: str, now: float) -> None:
    """A wait with no deadline may be long (a 429's reset): say so before it starts."""
    blocked = limits.limits(endpoint).blocked_until - now
    if blocked > 0:
        log.info(
            "rate limited by Datadog (429); waiting for the reset",
            extra={"endpoint": endpoint, "wait_seconds": round(blocked, 1)},
        )
