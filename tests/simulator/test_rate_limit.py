"""Rate-limit headers on every answer, per endpoint, per calendar-aligned period."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from simulator import Simulator, SimulatorOptions

from .support import AUTH, CASES, CONNECTIONS, DNS, cases_body

HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Period",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Name",
)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_699_999_990.0)  # 10 s into a calendar-aligned 60 s period


@pytest.fixture
async def limited(clock: FakeClock) -> AsyncIterator[aiohttp.ClientSession]:
    sim = Simulator(SimulatorOptions(rate_limit=3, rate_limit_period=60), clock=clock)
    await sim.start()
    try:
        async with aiohttp.ClientSession(base_url=sim.url, headers=AUTH) as session:
            yield session
    finally:
        await sim.stop()


async def test_every_answer_carries_the_five_headers(http: aiohttp.ClientSession) -> None:
    for method, path, status in [
        ("GET", CONNECTIONS, 200),
        ("GET", CONNECTIONS + "?limit=8000", 400),
        ("POST", CASES, 200),
        ("GET", "/api/v2/product-analytics/nope/mapping/connections", 404),
    ]:
        async with http.request(method, path, json=cases_body(["status"])) as response:
            assert response.status == status
            assert all(h in response.headers for h in HEADERS), path


async def test_names_are_per_endpoint(http: aiohttp.ClientSession) -> None:
    async with http.get(CONNECTIONS) as response:
        assert response.headers["X-RateLimit-Name"] == "network_connections_aggregate"
    async with http.get(DNS) as response:
        assert response.headers["X-RateLimit-Name"] == "network_dns_aggregate"


async def test_budget_runs_out_then_429_until_the_period_ends(
    limited: aiohttp.ClientSession, clock: FakeClock
) -> None:
    remaining = []
    for _ in range(3):
        async with limited.get(CONNECTIONS) as response:
            assert response.status == 200
            remaining.append(response.headers["X-RateLimit-Remaining"])
            assert response.headers["X-RateLimit-Reset"] == "50"
            assert response.headers["X-RateLimit-Limit"] == "3"
            assert response.headers["X-RateLimit-Period"] == "60"
    assert remaining == ["2", "1", "0"]
    async with limited.get(CONNECTIONS) as response:
        assert response.status == 429
        assert await response.json() == {"errors": ["Rate limit exceeded"]}
        assert response.headers["X-RateLimit-Remaining"] == "0"
    async with limited.get(DNS) as response:  # other endpoints have their own budget
        assert response.status == 200
    clock.now = 1_700_000_010.0  # same period (it started at 1_699_999_980)
    async with limited.get(CONNECTIONS) as response:
        assert response.status == 429
        assert response.headers["X-RateLimit-Reset"] == "30"
    clock.now = 1_700_000_040.0  # the next period
    async with limited.get(CONNECTIONS) as response:
        assert response.status == 200
        assert response.headers["X-RateLimit-Remaining"] == "2"
        assert response.headers["X-RateLimit-Reset"] == "60"
