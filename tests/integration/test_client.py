"""The HTTP client against the simulator: auth, every error shape, 429, 5xx, timeouts, size."""

from __future__ import annotations

import json
import time

import pytest

from exporter.collectors.connections import ConnectionsJob
from exporter.config.schema import ConnectionsQuery
from exporter.datadog.client import (
    DatadogClient,
    HttpError,
    RateLimited,
    RequestTimeout,
    ResponseTooLarge,
    ServerError,
)
from exporter.logs import Redactor
from simulator import Fault, Simulator
from simulator.options import ErrorShape

from .conftest import API_KEY, APP_KEY, credentials

JOB = ConnectionsJob(ConnectionsQuery(name="pairs", group_by=["client_service", "server_service"]))


async def test_authenticated_request_returns_rows_and_records_rate_limit(
    client: DatadogClient, simulator: Simulator
) -> None:
    body = await client.fetch(JOB.request(time.time()))
    assert len(json.loads(body)["data"]) > 0
    state = client.rate_limits.limits("connections")
    assert state.limit == 1000 and state.remaining == 999 and state.period == 60
    assert state.reset_at is not None


async def test_wrong_keys_are_rejected_and_never_echoed(simulator: Simulator) -> None:
    redactor = Redactor()
    wrong = DatadogClient(
        simulator.url,
        credentials=credentials(redactor, app_key="x" * 40),
        redactor=redactor,
        timeout=2,
        max_response_size=1 << 20,
    )
    try:
        with pytest.raises(HttpError) as caught:
            await wrong.fetch(JOB.request(time.time()))
    finally:
        await wrong.close()
    assert caught.value.status == 403 and "Forbidden" in str(caught.value)
    assert API_KEY not in repr(caught.value) and "x" * 40 not in str(caught.value)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("strings", "HTTP 400"),
        ("jsonapi", "HTTP 400: "),
        ("jsonapi_no_detail", "HTTP 400: "),
        ("generic", "Generic Error"),
        ("code", "HTTP 400: "),
    ],
)
async def test_each_error_shape_becomes_one_clear_line(
    client: DatadogClient, simulator: Simulator, shape: ErrorShape, expected: str
) -> None:
    simulator.set_fault(
        "connections",
        Fault(
            kind="status",
            status=400,
            error_shape=shape,
            count=1,
        ),
    )
    with pytest.raises(HttpError) as caught:
        await client.fetch(JOB.request(time.time()))
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert not isinstance(caught.value, ServerError)


async def test_html_error_page_is_described_not_dumped(
    client: DatadogClient, simulator: Simulator
) -> None:
    simulator.set_fault("connections", Fault(kind="html", status=403, count=1))
    with pytest.raises(HttpError) as caught:
        await client.fetch(JOB.request(time.time()))
    assert "HTML error page" in str(caught.value) and "<" not in str(caught.value)


async def test_429_blocks_until_reset(client: DatadogClient, simulator: Simulator) -> None:
    simulator.set_fault("connections", Fault(kind="rate_limit", reset_seconds=7, count=1))
    before = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await client.fetch(JOB.request(time.time()))
    assert 6 <= caught.value.retry_at - before <= 8
    assert client.rate_limits.limits("connections").blocked_until == caught.value.retry_at


async def test_5xx_is_retryable_server_error(client: DatadogClient, simulator: Simulator) -> None:
    simulator.set_fault("connections", Fault(kind="status", status=503, count=1))
    with pytest.raises(ServerError) as caught:
        await client.fetch(JOB.request(time.time()))
    assert caught.value.retryable and caught.value.status == 503


async def test_hanging_upstream_times_out(client: DatadogClient, simulator: Simulator) -> None:
    simulator.set_fault("connections", Fault(kind="hang", count=1))
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await client.fetch(JOB.request(time.time()))
    assert time.monotonic() - started < 4


async def test_slow_drip_is_bounded_by_the_timeout(
    client: DatadogClient, simulator: Simulator
) -> None:
    simulator.set_fault("connections", Fault(kind="drip", seconds=0.5, chunk_size=8, count=1))
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        await client.fetch(JOB.request(time.time()))
    assert time.monotonic() - started < 4


async def test_oversized_answer_is_abandoned_while_reading(
    client: DatadogClient, simulator: Simulator
) -> None:
    simulator.set_fault("connections", Fault(kind="huge", size_bytes=50 * 1024 * 1024, count=1))
    with pytest.raises(ResponseTooLarge):
        await client.fetch(JOB.request(time.time()))


async def test_responses_are_counted_by_endpoint_and_code(simulator: Simulator) -> None:
    seen: list[tuple[str, str]] = []
    redactor = Redactor()
    dd = DatadogClient(
        simulator.url,
        credentials=credentials(redactor),
        redactor=redactor,
        timeout=2,
        max_response_size=1 << 24,
        on_response=lambda e, c: seen.append((e, c)),
    )
    simulator.set_fault("connections", Fault(kind="status", status=500, count=1))
    try:
        with pytest.raises(ServerError):
            await dd.fetch(JOB.request(time.time()))
        await dd.fetch(JOB.request(time.time()))
    finally:
        await dd.close()
    assert seen == [("connections", "500"), ("connections", "200")]


async def test_sends_both_auth_headers(simulator: Simulator) -> None:
    for api, app in ((API_KEY, "wrong-app-key-000000"), ("wrong-api-key-00000", APP_KEY)):
        redactor = Redactor()
        dd = DatadogClient(
            simulator.url,
            credentials=credentials(redactor, api, app),
            redactor=redactor,
            timeout=2,
            max_response_size=1 << 20,
        )
        try:
            with pytest.raises(HttpError):
                await dd.fetch(JOB.request(time.time()))
        finally:
            await dd.close()
