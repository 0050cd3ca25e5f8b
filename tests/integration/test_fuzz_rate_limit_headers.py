"""Hostile rate-limit headers at the HTTP boundary: whatever ``X-RateLimit-*`` and
``Retry-After`` an answer carries (numbers past any bound, negative, fractional, NaN, words,
empty), the poll returns, a good answer's data is published whole, /metrics stays readable
with finite rate-limit gauges, and no header silences the endpoint for more than
MAX_BLOCK_SECONDS: a proxy or a garbled answer can cost an hour of one endpoint, never years.

Hypothesis makes the headers; the simulator's ``raw`` fault sends them over real HTTP, with
a real answer's body, to the real client and scheduler.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from exporter.datadog.budget import next_slot
from exporter.datadog.ratelimit import MAX_BLOCK_SECONDS
from simulator import Simulator

from .conftest import API_KEY, APP_KEY
from .test_fuzz_http import (
    FUZZ,
    JOBS,
    Answer,
    Stack,
    data_samples,
    metrics_page,
    poll,
    running_stack,
)

pytestmark = pytest.mark.fuzz

JOB = JOBS["connections"]
RATE_LIMIT_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Period",
    "X-RateLimit-Reset",
    "Retry-After",
)
RATE_LIMIT_GAUGES = (
    "datadog_exporter_rate_limit",
    "datadog_exporter_rate_limit_remaining",
    "datadog_exporter_rate_limit_period_seconds",
)
TOO_MANY = Answer(b'{"errors":["Rate limit exceeded"]}', 429, "application/json")

header_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=0, max_value=10**10).map(str),  # around the bounds that matter
    st.floats().map(repr),  # nan, inf, -0.0, 1e+300, 5e-324
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
    st.sampled_from(["", " 5 ", "1e9", "1e10", "0x10", "NaN", "Infinity", "3600.5", "1_000"]),
)
headers = st.fixed_dictionaries({}, optional=dict.fromkeys(RATE_LIMIT_HEADERS, header_values))


@pytest.fixture
async def stack(simulator: Simulator, aiohttp_client: Any) -> AsyncIterator[Stack]:
    async with running_stack(simulator, aiohttp_client) as stack:
        await stack.scheduler.add(JOB)
        yield stack


async def a_real_answer(stack: Stack) -> Answer:
    """The simulator's own answer to the query, as bytes to serve again."""
    request = JOB.request(time.time())
    async with stack.control.request(
        request.method,
        request.path,
        params=request.params,
        json=request.json_body,
        headers={"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY},
    ) as response:
        assert response.status == 200
        return Answer(await response.read(), 200, response.content_type)


async def serve(stack: Stack, answer: Answer, raw_headers: dict[str, str]) -> None:
    fault = {
        "endpoint": JOB.endpoint,
        "kind": "raw",
        "count": 1,
        "status": answer.status,
        "content_type": answer.content_type,
        "raw_headers": raw_headers,
        "raw_body": base64.b64encode(answer.body).decode(),
    }
    async with stack.control.post("/_simulator/faults", json=fault) as response:
        assert response.status == 200, await response.text()


@FUZZ
@given(raw_headers=headers, rate_limited=st.booleans())
# Nothing left until a reset 31 years away: the pacing waited for it (found by this test).
@example(
    raw_headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "999999999"}, rate_limited=False
)
async def test_no_rate_limit_header_costs_data_breaks_metrics_or_blocks_for_long(
    stack: Stack, raw_headers: dict[str, str], rate_limited: bool
) -> None:
    real = await a_real_answer(stack)
    stack.scheduler.clients(JOB.account).rate_limits.forget()  # each example from a clean state
    await serve(stack, real, {})
    await poll(stack, JOB)
    expected = data_samples(await metrics_page(stack), JOB)
    assert expected, "the real answer has rows"

    stack.scheduler.clients(JOB.account).rate_limits.forget()
    await serve(stack, TOO_MANY if rate_limited else real, raw_headers)
    await poll(stack, JOB)  # returning at all is what keeps the query's loop alive
    state = stack.scheduler.state((JOB.collector, JOB.name))
    page = await metrics_page(stack)  # promtool and prometheus_client both read it
    assert state.up is not rate_limited, state.last_error
    assert data_samples(page, JOB) == expected  # published whole, or the last good kept

    wall = time.time()
    for (name, _labels), value in page.items():
        if name in RATE_LIMIT_GAUGES:
            assert math.isfinite(value) and 0 <= value <= 10**9, (name, value)
        if name == "datadog_exporter_rate_limited_until_timestamp_seconds":
            assert value == 0 or value <= wall + MAX_BLOCK_SECONDS + 5, value

    limits = stack.scheduler.clients(JOB.account).rate_limits
    now = limits.clock.monotonic()
    state_now = limits.limits(JOB.endpoint)
    paced = next_slot(now, now, state_now.remaining, state_now.limit, state_now.reset_at)
    next_call = max(state_now.blocked_until, paced.at)
    assert next_call - now <= MAX_BLOCK_SECONDS + 1, (raw_headers, state_now)
