"""Faults, scenarios and the request log are switchable over HTTP (for subprocess runs)."""

from __future__ import annotations

import base64

import aiohttp

from simulator import Scenario, Simulator

from .support import CONNECTIONS, DNS

PAIR = {"client_service": "checkout", "server_service": "payments-db"}


async def _pair_row(http: aiohttp.ClientSession) -> dict[str, int]:
    params = {
        "group_by": "client_service,server_service",
        "query": "client_service:checkout AND server_service:payments-db",
        "from": "1700000000",
        "to": "1700000900",
    }
    async with http.get(CONNECTIONS, params=params) as response:
        assert response.status == 200
        (row,) = (await response.json())["data"]
    assert row["attributes"]["group_bys"] == {k: [v] for k, v in PAIR.items()}
    attributes: dict[str, int] = row["attributes"]
    return attributes


async def test_fault_routes_arm_list_and_clear_without_datadog_auth(sim: Simulator) -> None:
    async with aiohttp.ClientSession(base_url=sim.url) as control:
        fault = {"endpoint": "connections", "kind": "status", "status": 503, "count": 3}
        async with control.post("/_simulator/faults", json=fault) as response:
            assert response.status == 200
        async with control.get("/_simulator/faults") as response:
            assert (await response.json())["connections"]["status"] == 503
        async with control.delete("/_simulator/faults") as response:
            assert response.status == 200
        async with control.get("/_simulator/faults") as response:
            assert await response.json() == {}


async def test_fault_route_arms_a_fault_seen_by_the_next_requests(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    fault = {"endpoint": "connections", "kind": "status", "status": 503, "count": 2}
    async with http.post("/_simulator/faults", json=fault) as response:
        assert response.status == 200
    statuses = []
    for _ in range(3):
        async with http.get(CONNECTIONS) as response:
            statuses.append(response.status)
    assert statuses == [503, 503, 200]


async def test_fault_route_rejects_nonsense(http: aiohttp.ClientSession) -> None:
    for body in (
        {"endpoint": "metrics", "kind": "status"},
        {"endpoint": "dns", "kind": "explode"},
        {"endpoint": "dns", "kind": "status", "count": 0},
        {"endpoint": "dns", "kind": "status", "colour": "red"},
        ["not", "an", "object"],
    ):
        async with http.post("/_simulator/faults", json=body) as response:
            assert response.status == 400, body


async def test_request_log_route_lists_api_calls(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(CONNECTIONS, params={"limit": "5"}):
        pass
    async with http.get(CONNECTIONS, params={"limit": "8000"}):
        pass
    async with http.get("/_simulator/requests") as response:
        records = (await response.json())["requests"]
    assert [(r["endpoint"], r["query"]["limit"], r["status"]) for r in records] == [
        ("connections", "5", 200),
        ("connections", "8000", 400),
    ]
    assert records[0]["time"] <= records[1]["time"]
    async with http.delete("/_simulator/requests") as response:
        assert response.status == 200
    assert sim.request_log == []


async def test_retransmit_storm_scenario_over_http_raises_the_pair_retransmit_ratio(
    http: aiohttp.ClientSession,
) -> None:
    before = await _pair_row(http)
    scenario = {"kind": "retransmit_storm", "match": PAIR, "factor": 50}
    async with http.post("/_simulator/scenario", json=scenario) as response:
        assert response.status == 200
    during = await _pair_row(http)
    ratio_before = before["tcp_retransmits"] / before["packets_sent_by_client"]
    ratio_during = during["tcp_retransmits"] / during["packets_sent_by_client"]
    assert ratio_before < 0.01
    assert ratio_during >= 0.2
    async with http.delete("/_simulator/scenario") as response:
        assert response.status == 200
    assert await _pair_row(http) == before


async def test_rtt_and_resets_scenarios_only_touch_matching_connections(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    before = await _pair_row(http)
    sim.set_scenario(Scenario(kind="rtt_spike", match=PAIR, factor=20))
    sim.set_scenario(Scenario(kind="resets_spike", match=PAIR, factor=100))
    sim.set_scenario(Scenario(kind="retransmit_storm", match={"client_service": "nobody"}))
    during = await _pair_row(http)
    assert during["rtt_micro_seconds"] >= 15 * before["rtt_micro_seconds"]
    assert during["tcp_resets"] > 10 * max(1, before["tcp_resets"])
    assert during["tcp_retransmits"] == before["tcp_retransmits"]
    assert during["bytes_sent_by_client"] == before["bytes_sent_by_client"]
    sim.clear_scenarios()
    assert await _pair_row(http) == before


async def test_raw_fault_answers_exactly_the_bytes_status_and_type_it_was_given(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """Any body at all (here not UTF-8 and nested deep) reaches the client byte for byte."""
    body = b'{"data": [{"attributes": {"group_bys": {"s": ["\xff"]}}}], "x": ' + b"[" * 5000
    fault = {
        "endpoint": "connections",
        "kind": "raw",
        "count": 1,
        "status": 418,
        "content_type": "text/x-anything; charset=latin-1",
        "raw_body": base64.b64encode(body).decode(),
    }
    async with http.post("/_simulator/faults", json=fault) as response:
        assert response.status == 200
    async with http.get("/_simulator/faults") as response:
        assert base64.b64decode((await response.json())["connections"]["raw_body"]) == body
    async with http.get(CONNECTIONS) as response:
        assert response.status == 418
        assert response.headers["Content-Type"] == "text/x-anything; charset=latin-1"
        assert "X-RateLimit-Limit" in response.headers
        assert await response.read() == body
    async with http.get(CONNECTIONS) as response:  # count 1: the next answer is real again
        assert response.status == 200 and (await response.json())["data"]


async def test_raw_fault_headers_are_sent_over_the_simulators_own(
    http: aiohttp.ClientSession,
) -> None:
    """A rate-limit header no Datadog would send reaches the client in place of the real one;
    a header that could not be one line of a response is refused."""
    headers = {"X-RateLimit-Reset": "99999999999", "Retry-After": "soon", "X-Extra": ""}
    fault = {"endpoint": "dns", "kind": "raw", "count": 1, "raw_headers": headers}
    async with http.post("/_simulator/faults", json=fault) as response:
        assert response.status == 200, await response.text()
    async with http.get(DNS) as response:
        assert {name: response.headers[name] for name in headers} == headers
        assert response.headers.getall("X-RateLimit-Reset") == ["99999999999"]
        assert "X-RateLimit-Limit" in response.headers  # the simulator's own, kept
    for bad in ({"Bad Name": "1"}, {"X-RateLimit-Reset": "1\r\nX-Evil: 1"}, {"X-A": 1}):
        fault = {"endpoint": "dns", "kind": "raw", "raw_headers": bad}
        async with http.post("/_simulator/faults", json=fault) as response:
            assert response.status == 400, bad
            assert "raw_headers" in await response.text()


async def test_raw_fault_defaults_to_200_json_and_rejects_what_is_not_base64(
    http: aiohttp.ClientSession,
) -> None:
    fault = {"endpoint": "dns", "kind": "raw", "count": 1, "raw_body": "bm90IGpzb24="}
    async with http.post("/_simulator/faults", json=fault) as response:
        assert response.status == 200
    async with http.get(DNS) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert await response.read() == b"not json"
    for bad in (
        {"endpoint": "dns", "kind": "raw", "raw_body": "not base64!"},
        {"endpoint": "dns", "kind": "raw", "raw_body": 12},
        {"endpoint": "dns", "kind": "raw", "content_type": "text/plain\r\nX-Evil: 1"},
    ):
        async with http.post("/_simulator/faults", json=bad) as response:
            assert response.status == 400, bad
