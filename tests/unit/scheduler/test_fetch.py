"""The one fetch path (scheduler/fetch.py): live polls and backfill windows differ only in
their stop rule, and each rule is kept."""

from __future__ import annotations

import random

import pytest

from exporter.collectors.protocol import ApiRequest
from exporter.datadog.client import (
    RateLimited,
    RequestFailed,
    RequestTimeout,
    ServerError,
    Unauthorized,
)
from exporter.datadog.ratelimit import RateLimits
from exporter.scheduler.fetch import Attempts, FetchFailed, StopRule, fetch_with_retries
from exporter.scheduler.policy import Backoff
from tests.clocks import FastForwardClock

REQUEST = ApiRequest("connections", "GET", "/api/v2/network/connections/aggregate")


class ScriptedClient:
    """Answers each request with the next item of ``script`` (an error is raised)."""

    def __init__(self, clock: FastForwardClock, script: list[bytes | RequestFailed]) -> None:
        self.rate_limits = RateLimits(clock)
        self.script = script
        self.sent = 0

    async def fetch(self, request: ApiRequest) -> bytes:
        item = self.script[self.sent]
        self.sent += 1
        if isinstance(item, RequestFailed):
            raise item
        return item


async def fetch(
    clock: FastForwardClock, client: ScriptedClient, stop: StopRule, attempts: Attempts
) -> bytes:
    return await fetch_with_retries(
        client,
        REQUEST,
        stop,
        clock=clock,
        retry=Backoff(base=1.0, cap=30.0),
        rng=random.Random(1),
        attempts=attempts,
    )


def timeouts(n: int) -> list[bytes | RequestFailed]:
    return [RequestTimeout("connections: no complete answer within 10s") for _ in range(n)]


async def test_a_poll_counts_429s_against_its_attempts() -> None:
    clock = FastForwardClock()
    client = ScriptedClient(clock, [RateLimited("429", clock.monotonic()) for _ in range(5)])
    attempts = Attempts()
    with pytest.raises(FetchFailed) as failed:
        await fetch(
            clock, client, StopRule(max_attempts=3, deadline=clock.monotonic() + 60), attempts
        )
    assert (failed.value.reason, attempts.sent, client.sent) == ("rate_limited", 3, 3)


async def test_a_window_does_not_count_429s_and_retries_past_them() -> None:
    clock = FastForwardClock()
    script: list[bytes | RequestFailed] = [RateLimited("429", clock.monotonic()) for _ in range(4)]
    client = ScriptedClient(clock, [*script, *timeouts(2), b"{}"])
    attempts = Attempts()
    stop = StopRule(max_attempts=3, rate_limited_counts=False)
    assert await fetch(clock, client, stop, attempts) == b"{}"
    assert attempts.sent == 7


async def test_retries_stop_at_max_attempts_without_a_deadline() -> None:
    clock = FastForwardClock()
    client = ScriptedClient(clock, [*timeouts(5), b"{}"])
    with pytest.raises(FetchFailed) as failed:
        await fetch(clock, client, StopRule(max_attempts=5), Attempts())
    assert failed.value.reason == "timeout" and client.sent == 5
    assert len(clock.slept) == 4  # a wait between each two requests, none after the last


async def test_a_retry_that_would_pass_the_deadline_is_not_made() -> None:
    clock = FastForwardClock()
    client = ScriptedClient(clock, [ServerError("503", 503, retry_after=30.0), b"{}"])
    stop = StopRule(max_attempts=5, deadline=clock.monotonic() + 10)
    with pytest.raises(FetchFailed) as failed:
        await fetch(clock, client, stop, Attempts())
    assert (failed.value.reason, client.sent, clock.slept) == ("server_error", 1, [])


async def test_retry_after_is_what_a_retry_waits_for_polls_and_windows_alike() -> None:
    for stop in (StopRule(max_attempts=2, deadline=1e9), StopRule(max_attempts=2)):
        clock = FastForwardClock()
        client = ScriptedClient(clock, [ServerError("503", 503, retry_after=7.0), b"{}"])
        assert await fetch(clock, client, stop, Attempts()) == b"{}"
        assert clock.slept == [7.0]


async def test_a_refused_key_is_not_retried_and_the_cause_says_so() -> None:
    clock = FastForwardClock()
    client = ScriptedClient(clock, [Unauthorized("401", 401), b"{}"])
    with pytest.raises(FetchFailed) as failed:
        await fetch(clock, client, StopRule(max_attempts=5), Attempts())
    assert client.sent == 1 and isinstance(failed.value.cause, Unauthorized)
    assert failed.value.reason == "unauthorized"
