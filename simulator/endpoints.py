"""The Datadog endpoints the simulator serves: the one list of them, and how each answers.

An entry names the endpoint (as faults, budgets and the request log call it), its route, the
``X-RateLimit-Name`` Datadog gives its budget, how it computes an answer, and what its
``huge`` and ``wrong_shape`` faults send. Everything else that treats endpoints one by one
(routes, budgets, faults) reads this list; adding an endpoint is one entry here.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from simulator.audience import list_connections
from simulator.cases import aggregate_cases
from simulator.endpoint import JSON_API, AnswerInputs, Endpoint
from simulator.errors import ErrorAnswer
from simulator.history import NetworkEndpoint, network_answer, network_query
from simulator.network_health import answer as network_health_answer
from simulator.network_health import parse_window
from simulator.params import parse_cases_body


def _ok(body: bytes) -> web.Response:
    return web.Response(status=200, body=body, content_type=JSON_API)


def _network_answer(
    request: web.Request, state: AnswerInputs, endpoint: NetworkEndpoint
) -> web.Response:
    """The two CNM aggregate endpoints share parameters and caching; only the rows differ."""
    query = network_query(endpoint, request.query, int(state.clock()))
    key = (endpoint, query.keys, query.filter_key, query.start, query.end, query.limit)
    scenarios = tuple(state.scenarios)
    return _ok(
        state.cached_answer(key, lambda: network_answer(state.network, endpoint, query, scenarios))
    )


def _connections(request: web.Request, state: AnswerInputs, _body: Any) -> web.Response:
    return _network_answer(request, state, "connections")


def _dns(request: web.Request, state: AnswerInputs, _body: Any) -> web.Response:
    return _network_answer(request, state, "dns")


def _cases(_request: web.Request, state: AnswerInputs, body: Any) -> web.Response:
    query = parse_cases_body(body)
    answer = aggregate_cases(
        state.cases,
        predicate=query.predicate,
        groups=query.groups,
        limit=query.limit,
        multi_group=state.options.cases_multi_group,
        request_id=f"{query.query_filter}|{','.join(query.groups)}|{query.limit}",
    )
    return _ok(msgspec.json.encode(answer))


def _audience(request: web.Request, _state: AnswerInputs, _body: Any) -> web.Response:
    entity = request.match_info["entity"]
    answer = list_connections(entity)
    if answer is None:
        raise ErrorAnswer(404, "Not Found", f"entity {entity!r} does not exist", shape="code")
    return _ok(msgspec.json.encode(answer))


def _network_health(request: web.Request, state: AnswerInputs, _body: Any) -> web.Response:
    start, end = parse_window(request.query, int(state.clock()))
    return _ok(network_health_answer(start, end, tuple(state.scenarios)))


# A list where the exporter expects an object, and the other way round.
_OBJECT_EXPECTED = {"data": [{"unexpected": 1}]}
_LIST_EXPECTED = {"data": {"unexpected": 1}}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "connections",
        "GET",
        "/api/v2/network/connections/aggregate",
        "network_connections_aggregate",
        _connections,
        (
            b'{"data":[',
            msgspec.json.encode(
                {
                    "id": "client_service:huge, server_service:huge",
                    "type": "aggregated_connection",
                    "attributes": {
                        "group_bys": {"client_service": ["huge"], "server_service": ["huge"]},
                        "bytes_sent_by_client": 123456789,
                        "packets_sent_by_client": 12345,
                        "tcp_retransmits": 12,
                        "rtt_micro_seconds": 1234,
                    },
                }
            ),
            b"]}",
        ),
        _LIST_EXPECTED,
        cnm=True,
    ),
    Endpoint(
        "dns",
        "GET",
        "/api/v2/network/dns/aggregate",
        "network_dns_aggregate",
        _dns,
        (
            b'{"data":[',
            msgspec.json.encode(
                {
                    "id": "network.dns_query:huge.example",
                    "type": "aggregated_dns",
                    "attributes": {
                        "group_bys": [{"key": "network.dns_query", "value": "huge.example"}],
                        "metrics": [{"key": "dns_total_requests", "value": 1234}],
                    },
                }
            ),
            b"]}",
        ),
        _LIST_EXPECTED,
        cnm=True,
    ),
    Endpoint(
        "cases",
        "POST",
        "/api/v2/cases/aggregate",
        "cases_aggregate",
        _cases,
        (
            b'{"data":{"id":"agg-huge","type":"aggregate","attributes":{"total":1,"groups":[',
            b'{"group":"OPEN","value":[1]}',
            b"]}}}",
        ),
        _OBJECT_EXPECTED,
    ),
    Endpoint(
        "audience",
        "GET",
        "/api/v2/product-analytics/{entity}/mapping/connections",
        "product_analytics_list_connections",
        _audience,
        (
            b'{"data":{"id":"users","type":"list_connections_response","attributes":'
            b'{"connections":[',
            b'{"id":"huge","type":"ref_table","fields":[],"metadata":{"k":"v"}}',
            b"]}}}",
        ),
        _OBJECT_EXPECTED,
    ),
    Endpoint(
        "network_health",
        "GET",
        "/api/v2/network-health-insights",
        "network_health_insights",
        _network_health,
        (
            b'{"data":[',
            msgspec.json.encode(
                {
                    "id": "nhi-huge",
                    "type": "network-health-insights",
                    "attributes": {
                        "type": "tcp",
                        "failure_type": "timeout",
                        "client_service": "huge",
                        "server_service": "huge",
                        "failure_magnitude": 12,
                        "failure_rate": 1.5,
                        "total_requests": 800,
                    },
                }
            ),
            b"]}",
        ),
        _LIST_EXPECTED,
    ),
)

BY_NAME: dict[str, Endpoint] = {endpoint.name: endpoint for endpoint in ENDPOINTS}
# What a fault may be armed for: one endpoint, or "*" for every one without its own fault.
FAULT_TARGETS: tuple[str, ...] = (*BY_NAME, "*")
