"""Every fault kind is observable by a plain HTTP client."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from simulator import Fault, Simulator
from simulator.options import ErrorShape

from .support import CASES, CONNECTIONS, DNS, cases_body


async def test_status_fault_applies_to_the_next_count_requests_only(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_fault("connections", Fault(kind="status", status=500, count=2))
    statuses = []
    for _ in range(3):
        async with http.get(CONNECTIONS) as response:
            statuses.append(response.status)
            if response.status == 500:
                body = await response.json()
                assert body["errors"][0]["status"] == "500"
                assert body["errors"][0]["title"] == "Internal Server Error"
                assert body["errors"][0]["detail"]
    assert statuses == [500, 500, 200]
    assert [r.status for r in sim.request_log] == [500, 500, 200]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("strings", {"errors": ["Forbidden"]}),
        ("jsonapi_no_detail", {"errors": [{"status": "403", "title": "Forbidden"}]}),
        ("code", {"errors": [{"code": "forbidden", "title": "Forbidden"}]}),
    ],
)
async def test_status_fault_error_shapes(
    sim: Simulator, http: aiohttp.ClientSession, shape: ErrorShape, expected: object
) -> None:
    sim.set_fault("dns", Fault(kind="status", status=403, error_shape=shape, count=1))
    async with http.get(DNS) as response:
        assert response.status == 403
        assert await response.json() == expected


async def test_generic_and_not_found_shapes(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("dns", Fault(kind="status", status=502, error_shape="generic", count=1))
    async with http.get(DNS) as response:
        (error,) = (await response.json())["errors"]
        assert error["title"] == "Generic Error" and "status" not in error
    sim.set_fault("dns", Fault(kind="status", status=404, error_shape="code", count=1))
    async with http.get(DNS) as response:
        assert (await response.json())["errors"][0]["code"] == "resource_not_found"


async def test_wildcard_fault_hits_every_endpoint_forever_until_cleared(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_fault("*", Fault(kind="status", status=503))
    for _ in range(3):
        async with http.get(CONNECTIONS) as response:
            assert response.status == 503
        async with http.post(CASES, json=cases_body(["status"])) as response:
            assert response.status == 503
    sim.clear_faults()
    async with http.get(CONNECTIONS) as response:
        assert response.status == 200


async def test_rate_limit_fault_keeps_answering_429_during_the_reset_period(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_fault("connections", Fault(kind="rate_limit", reset_seconds=1, count=1))
    async with http.get(CONNECTIONS) as response:
        assert response.status == 429
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.headers["X-RateLimit-Reset"] == "1"
        assert await response.json() == {"errors": ["Rate limit exceeded"]}
    async with http.get(CONNECTIONS) as response:
        assert response.status == 429
        assert response.headers["X-RateLimit-Remaining"] == "0"
    async with http.get(DNS) as response:
        assert response.status == 200
    await asyncio.sleep(1.05)
    async with http.get(CONNECTIONS) as response:
        assert response.status == 200


async def test_latency_fault_delays_a_normal_answer(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_fault("connections", Fault(kind="latency", seconds=0.3, count=1))
    started = time.monotonic()
    async with http.get(CONNECTIONS) as response:
        assert response.status == 200
        assert (await response.json())["data"]
    assert time.monotonic() - started >= 0.3


async def test_hang_fault_never_answers_and_does_not_block_stop(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_fault("connections", Fault(kind="hang"))
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(CONNECTIONS, timeout=aiohttp.ClientTimeout(total=0.3)):
            pass
    assert sim.request_log[-1].status is None
    started = time.monotonic()
    pending = asyncio.ensure_future(http.get(CONNECTIONS))
    await asyncio.sleep(0.1)
    await sim.stop()
    assert time.monotonic() - started < 1.5
    pending.cancel()


async def test_drip_fault_sends_the_body_slowly_in_small_pieces(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(CONNECTIONS, params={"limit": "1"}) as response:
        expected = await response.read()
    sim.set_fault("connections", Fault(kind="drip", chunk_size=64, seconds=0.01, count=1))
    started = time.monotonic()
    pieces = []
    async with http.get(CONNECTIONS, params={"limit": "1"}) as response:
        assert response.status == 200
        async for piece in response.content.iter_any():
            pieces.append(piece)
    assert b"".join(pieces) == expected
    assert len(pieces) > 3
    assert time.monotonic() - started >= 0.01 * (len(expected) // 64)


async def test_malformed_fault_is_invalid_json(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.set_fault("connections", Fault(kind="malformed", count=1))
    async with http.get(CONNECTIONS) as response:
        assert response.status == 200
        text = await response.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_truncated_fault_cuts_the_real_answer_short(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(DNS) as response:
        whole = await response.read()
    sim.set_fault("dns", Fault(kind="truncated", count=1))
    async with http.get(DNS) as response:
        assert response.status == 200
        cut = await response.read()
    assert whole.startswith(cut) and len(cut) < len(whole)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)


@pytest.mark.parametrize("status", [403, 429])
async def test_html_fault_serves_an_edge_error_page(
    sim: Simulator, http: aiohttp.ClientSession, status: int
) -> None:
    sim.set_fault("cases", Fault(kind="html", status=status, count=1))
    async with http.post(CASES, json=cases_body(["status"])) as response:
        assert response.status == status
        assert response.content_type == "text/html"
        assert "<html>" in await response.text()


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(kind="wrong_shape", count=1), {"data": {"unexpected": 1}}),
        (Fault(kind="wrong_shape", body=[1, 2], count=1), [1, 2]),
    ],
)
async def test_wrong_shape_fault_is_valid_json_of_another_shape(
    sim: Simulator, http: aiohttp.ClientSession, fault: Fault, expected: object
) -> None:
    sim.set_fault("connections", fault)
    async with http.get(CONNECTIONS) as response:
        assert response.status == 200
        assert await response.json(content_type=None) == expected


@pytest.mark.parametrize("endpoint", ["connections", "cases"])
async def test_huge_fault_streams_valid_json_of_the_requested_size(
    sim: Simulator, http: aiohttp.ClientSession, endpoint: str
) -> None:
    size = 20 * 1024 * 1024
    sim.set_fault(endpoint, Fault(kind="huge", size_bytes=size, count=1))
    if endpoint == "connections":
        request = http.get(CONNECTIONS)
    else:
        request = http.post(CASES, json=cases_body(["status"]))
    async with request as response:
        assert response.status == 200
        assert response.headers.get("Content-Length") is None
        body = await response.read()
    assert len(body) == size
    assert json.loads(body)["data"]
