"""Auth and request validation answer like Datadog: 403 and 400 with its error shapes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from simulator import Simulator

from .support import AUDIENCE, AUTH, CASES, CONNECTIONS, DNS, cases_body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"DD-API-KEY": "sim-api-key"},
        {"DD-API-KEY": "sim-api-key", "DD-APPLICATION-KEY": "wrong"},
        {"Authorization": "Bearer token"},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", CONNECTIONS), ("GET", DNS), ("POST", CASES), ("GET", AUDIENCE.format(entity="users"))],
)
async def test_missing_or_wrong_keys_are_forbidden(
    sim: Simulator, headers: dict[str, str], method: str, path: str
) -> None:
    async with (
        aiohttp.ClientSession(base_url=sim.url) as session,
        session.request(method, path, headers=headers, json=cases_body(["status"])) as response,
    ):
        assert response.status == 403
        assert await response.json() == {"errors": ["Forbidden"]}
        assert response.headers["X-RateLimit-Name"]


@pytest.mark.parametrize("path", [CONNECTIONS, DNS])
@pytest.mark.parametrize(
    ("params", "title"),
    [
        ({"limit": "8000"}, "Invalid limit"),
        ({"limit": "0"}, "Invalid limit"),
        ({"limit": "ten"}, "Invalid limit"),
        ({"from": "1700000600", "to": "1700000000"}, "Invalid time range"),
        ({"from": "1700000000", "to": "1700000000"}, "Invalid time range"),
        ({"from": "yesterday"}, "Invalid from"),
        ({"to": "1.5"}, "Invalid to"),
        ({"group_by": ",".join(f"tag{i}" for i in range(11))}, "Invalid group_by"),
        ({"query": "client_service:(checkout"}, "Invalid query"),
        ({"query": "just some free text"}, "Invalid query"),
        ({"query": "bytes:>100"}, "Invalid query"),
        ({"tags": "nocolon"}, "Invalid tags"),
    ],
)
async def test_invalid_parameters_answer_400_with_a_jsonapi_error(
    http: aiohttp.ClientSession, path: str, params: dict[str, str], title: str
) -> None:
    async with http.get(path, params=params) as response:
        assert response.status == 400
        body = await response.json()
    (error,) = body["errors"]
    assert error["status"] == "400"
    assert error["title"] == title
    assert error["detail"]


async def test_ten_group_by_fields_are_accepted(http: aiohttp.ClientSession) -> None:
    group_by = ",".join(f"tag{i}" for i in range(10))
    async with http.get(CONNECTIONS, params={"group_by": group_by}) as response:
        assert response.status == 200
        assert (await response.json())["data"]


async def test_dns_rejects_server_ungrouped_with_another_server_grouping(
    http: aiohttp.ClientSession,
) -> None:
    params = {"group_by": "network.dns_query,server_ungrouped,server_service"}
    async with http.get(DNS, params=params) as response:
        assert response.status == 400
        assert "server_ungrouped" in (await response.json())["errors"][0]["detail"]
    params = {"group_by": "network.dns_query,server_ungrouped"}
    async with http.get(DNS, params=params) as response:
        assert response.status == 200


def _without(path: list[str]) -> dict[str, Any]:
    body: Any = cases_body(["status"])
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return dict(body)


def _with(path: list[str], value: Any) -> dict[str, Any]:
    body: Any = cases_body(["status"])
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return dict(body)


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        _without(["data"]),
        _without(["data", "type"]),
        _without(["data", "attributes"]),
        _without(["data", "attributes", "query_filter"]),
        _without(["data", "attributes", "group_by"]),
        _without(["data", "attributes", "group_by", "groups"]),
        _without(["data", "attributes", "group_by", "limit"]),
        _with(["data", "type"], "cases"),
        _with(["data", "attributes", "query_filter"], 7),
        _with(["data", "attributes", "group_by", "groups"], "status"),
        _with(["data", "attributes", "group_by", "groups"], [1]),
        _with(["data", "attributes", "group_by", "limit"], "14"),
        _with(["data", "attributes", "group_by", "limit"], 1001),
        _with(["data", "attributes", "group_by", "limit"], 0),
        _with(["data", "attributes", "query_filter"], "status:(OPEN"),
    ],
)
async def test_invalid_case_bodies_answer_400(http: aiohttp.ClientSession, body: Any) -> None:
    async with http.post(CASES, json=body) as response:
        assert response.status == 400
        (error,) = (await response.json())["errors"]
    assert error["status"] == "400"
    assert error["title"]


async def test_case_body_that_is_not_json_answers_400(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession(base_url=sim.url, headers=AUTH) as session,
        session.post(CASES, data=b"{not json") as response,
    ):
        assert response.status == 400


async def test_case_limit_of_1000_and_empty_filter_are_accepted(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post(CASES, json=cases_body(["status"], limit=1000)) as response:
        assert response.status == 200
        assert (await response.json())["data"]["attributes"]["total"] > 0


async def test_unknown_audience_entity_answers_404_with_an_error_code(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get(AUDIENCE.format(entity="planets")) as response:
        assert response.status == 404
        (error,) = (await response.json())["errors"]
    assert error["code"] == "resource_not_found"
