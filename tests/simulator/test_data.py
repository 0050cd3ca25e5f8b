"""The simulated data: deterministic, tricky, partly absent, time-varying, filterable."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from simulator import Simulator, SimulatorOptions
from simulator.data import CONNECTION_METRICS, NetworkData
from simulator.query import match_all

from .support import AUDIENCE, AUTH, CASES, CONNECTIONS, DNS, cases_body

WINDOW = {"from": "1700000100", "to": "1700001000"}
SERVICES = "client_service,server_service"


async def _get(http: aiohttp.ClientSession, path: str, **params: str) -> Any:
    async with http.get(path, params=params) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "application/vnd.api+json"
        return await response.json()


async def _raw(sim: Simulator, path: str, params: dict[str, str]) -> bytes:
    async with (
        aiohttp.ClientSession(base_url=sim.url, headers=AUTH) as http,
        http.get(path, params=params) as response,
    ):
        return await response.read()


async def test_same_seed_same_bytes_other_seed_other_data(sim: Simulator) -> None:
    params = {"group_by": SERVICES, "limit": "7500", **WINDOW}
    twin, other = Simulator(SimulatorOptions(seed=42)), Simulator(SimulatorOptions(seed=43))
    await twin.start()
    await other.start()
    try:
        for path in (CONNECTIONS, DNS):
            mine = await _raw(sim, path, params)
            assert mine == await _raw(twin, path, params)
            assert mine != await _raw(other, path, params)
    finally:
        await twin.stop()
        await other.stop()


async def test_tricky_values_occur_in_group_bys(http: aiohttp.ClientSession) -> None:
    fields = "client_service,client_availability_zone,server_kube_namespace"
    body = await _get(http, CONNECTIONS, group_by=fields, limit="7500", **WINDOW)
    values = {
        v for row in body["data"] for vs in row["attributes"]["group_bys"].values() for v in vs
    }
    assert "N/A" in values
    assert any('"' in v for v in values)
    assert any("\\" in v for v in values)
    assert any("\n" in v for v in values)
    assert {"zürich-ß", "東京"} <= values
    assert any("🚀" in v for v in values)


async def test_rows_can_omit_metrics_and_absent_is_not_zero(
    http: aiohttp.ClientSession,
) -> None:
    body = await _get(http, CONNECTIONS, group_by=SERVICES, limit="7500", **WINDOW)
    attributes = [row["attributes"] for row in body["data"]]
    udp_like = [a for a in attributes if "tcp_retransmits" not in a]
    assert udp_like and all("bytes_sent_by_client" in a for a in udp_like)
    assert all("rtt_micro_seconds" not in a for a in udp_like)
    full = [a for a in attributes if set(CONNECTION_METRICS) <= set(a)]
    assert full
    assert any(a.get("tcp_timeouts") == 0 for a in full)  # zero is sent as 0, not omitted


async def test_ids_types_and_values(http: aiohttp.ClientSession) -> None:
    body = await _get(
        http, CONNECTIONS, group_by=SERVICES, query="client_service:checkout", **WINDOW
    )
    row = next(
        r for r in body["data"] if r["attributes"]["group_bys"]["server_service"] == ["payments-db"]
    )
    assert row["id"] == "client_service:checkout, server_service:payments-db"
    assert row["type"] == "aggregated_connection"
    assert all(isinstance(v, int) for k, v in row["attributes"].items() if k != "group_bys")


async def test_values_vary_by_five_minute_bucket_and_scale_with_the_window(
    http: aiohttp.ClientSession,
) -> None:
    def totals(body: Any) -> dict[str, int]:
        return {r["id"]: r["attributes"]["bytes_sent_by_client"] for r in body["data"]}

    async def window(start: int, end: int) -> dict[str, int]:
        params = {"group_by": SERVICES, "from": str(start), "to": str(end)}
        return totals(await _get(http, CONNECTIONS, **params))

    base = 1_700_000_100  # a bucket boundary (multiple of 300)
    first = await window(base - 900, base)
    same_bucket = await window(base - 900, base + 60)
    next_bucket = await window(base - 600, base + 300)
    assert first != next_bucket
    shared = set(first) & set(same_bucket)
    assert shared
    for key in shared:  # same bucket, 960 s instead of 900 s
        assert same_bucket[key] == pytest.approx(first[key] * 960 / 900, rel=0.01, abs=2)


async def test_limit_truncates_and_filters_can_empty_the_answer(
    http: aiohttp.ClientSession,
) -> None:
    assert len((await _get(http, CONNECTIONS, group_by=SERVICES, limit="5"))["data"]) == 5
    assert len((await _get(http, CONNECTIONS, group_by=SERVICES))["data"]) == 100
    assert await _get(http, CONNECTIONS, query="client_service:nothing-here") == {"data": []}
    assert await _get(http, DNS, tags="client_service:nothing-here") == {"data": []}


async def test_query_wins_over_tags_and_filters_rows(http: aiohttp.ClientSession) -> None:
    body = await _get(
        http,
        CONNECTIONS,
        group_by="client_service",
        limit="7500",
        tags="client_service:cart",
        query="client_service:checkout OR client_service:auth",
    )
    services = {v for r in body["data"] for v in r["attributes"]["group_bys"]["client_service"]}
    assert {"checkout", "auth"} <= services
    assert all(
        "checkout" in r["attributes"]["group_bys"]["client_service"]
        or "auth" in r["attributes"]["group_bys"]["client_service"]
        for r in body["data"]
    )


async def test_a_tag_key_no_connection_carries_groups_everything_under_na(
    http: aiohttp.ClientSession,
) -> None:
    """As Datadog answers a group_by on a tag nobody set (a typo such as `client_servce`):
    one N/A group, which the exporter reports as an unresolved field."""
    body = await _get(http, CONNECTIONS, group_by="client_servce,server_service", **WINDOW)
    typo = {tuple(r["attributes"]["group_bys"]["client_servce"]) for r in body["data"]}
    known = {r["attributes"]["group_bys"]["server_service"][0] for r in body["data"]}
    assert typo == {("N/A",)}
    assert len(known) > 2  # the field it knows still splits the answer


async def test_dns_rows_have_list_group_bys_and_consistent_metrics(
    http: aiohttp.ClientSession,
) -> None:
    body = await _get(http, DNS, limit="7500", **WINDOW)
    for row in body["data"]:
        assert row["type"] == "aggregated_dns"
        metrics = {m["key"]: m["value"] for m in row["attributes"]["metrics"]}
        assert metrics["dns_total_requests"] == (
            metrics["dns_successful_responses"] + metrics["dns_failures"]
        )
        assert metrics["dns_failures"] == metrics["dns_failed_responses"] + metrics["dns_timeouts"]
    queries = {g["value"] for r in body["data"] for g in r["attributes"]["group_bys"]}
    assert {"münchen.example", "東京.example.jp", 'weird"name.example', "N/A"} <= queries
    assert any(
        "dns_success_latency_percentile" not in {m["key"] for m in r["attributes"]["metrics"]}
        for r in body["data"]
    )


def test_a_20000_connection_universe_answers_7500_distinct_rows() -> None:
    """The benchmarks' largest answer exists. (Its speed is reported by the benchmark,
    not asserted here: timing asserts flake on a busy machine.)"""
    data = NetworkData(seed=42, connections=20000)
    assert len(data.connections) == 20000
    keys = ("client_service", "server_service", "client_availability_zone")
    rows = data.rows(
        "connections",
        keys=keys,
        filter_key=("", ""),
        predicate=match_all,
        start=0,
        end=900,
        limit=7500,
    )
    assert len(rows) == 7500
    groups = {repr(row["attributes"]["group_bys"]) for row in rows}
    assert len(groups) == 7500


async def test_case_counts_add_up_and_filters_apply(http: aiohttp.ClientSession) -> None:
    async def aggregate(groups: list[str], query_filter: str = "") -> Any:
        async with http.post(CASES, json=cases_body(groups, 1000, query_filter)) as response:
            assert response.status == 200
            assert response.content_type == "application/vnd.api+json"
            return (await response.json())["data"]["attributes"]

    by_status = await aggregate(["status"])
    assert by_status["total"] == sum(g["value"][0] for g in by_status["groups"])
    assert {g["group"] for g in by_status["groups"]} == {"OPEN", "IN_PROGRESS", "CLOSED"}
    priorities = {g["group"] for g in (await aggregate(["priority"]))["groups"]}
    assert priorities == {"P1", "P2", "P3", "P4", "P5", "NOT_DEFINED"}
    open_only = await aggregate(["status"], "status:OPEN")
    assert [g["group"] for g in open_only["groups"]] == ["OPEN"]
    combined = await aggregate(["status", "priority"])
    assert {g["group"] for g in combined["groups"]} >= {"OPEN,P1", "CLOSED,NOT_DEFINED"}
    assert combined["total"] == by_status["total"]
    async with http.post(CASES, json=cases_body(["status"], limit=2)) as response:
        assert len((await response.json())["data"]["attributes"]["groups"]) == 2


async def test_case_multi_group_facets_mode_lists_each_field_separately() -> None:
    sim = Simulator(SimulatorOptions(cases_multi_group="facets"))
    await sim.start()
    try:
        async with (
            aiohttp.ClientSession(base_url=sim.url, headers=AUTH) as http,
            http.post(CASES, json=cases_body(["status", "priority"], 1000)) as response,
        ):
            attributes = (await response.json())["data"]["attributes"]
    finally:
        await sim.stop()
    groups = [g["group"] for g in attributes["groups"]]
    assert groups[:3] and set(groups[:3]) == {"OPEN", "IN_PROGRESS", "CLOSED"}
    assert "P1" in groups
    assert sum(g["value"][0] for g in attributes["groups"]) == 2 * attributes["total"]


async def test_audience_entities_have_connections_with_edge_case_dates(
    http: aiohttp.ClientSession,
) -> None:
    users = (await _get(http, AUDIENCE.format(entity="users")))["data"]
    assert users["type"] == "list_connections_response"
    connections = users["attributes"]["connections"]
    assert any(c.get("created_at") == "0001-01-01T00:00:00Z" for c in connections)
    assert any("updated_at" not in c for c in connections)
    accounts = (await _get(http, AUDIENCE.format(entity="accounts")))["data"]
    assert len(accounts["attributes"]["connections"]) >= 2
