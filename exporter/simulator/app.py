"""The aiohttp application: Datadog's four routes, auth, rate limits, faults, control routes.

Each Datadog request goes through the same steps, in this order: log it,
count it against its endpoint's budget (headers on every answer), answer 429
while a rate_limit fault's reset period runs, apply an armed replacing fault,
check the keys (403), answer 429 over budget, answer a bare 400 on the CNM endpoints of an
organisation without CNM, validate (400) and compute the answer, then deliver it (possibly
slowed or damaged by a fault).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import msgspec
from aiohttp import web

from exporter.simulator.audience import list_connections
from exporter.simulator.cases import aggregate_cases
from exporter.simulator.errors import ApiError
from exporter.simulator.faults import (
    JSON_API,
    REPLACING_KINDS,
    deliver,
    json_response,
    replace_answer,
)
from exporter.simulator.options import (
    EndpointName,
    OptionError,
    fault_from_json,
    scenario_from_json,
)
from exporter.simulator.params import parse_cases_body, parse_network_params
from exporter.simulator.state import RequestRecord, SimulatorState

STATE: web.AppKey[SimulatorState] = web.AppKey("simulator_state", SimulatorState)

Compute = Callable[[web.Request, SimulatorState, Any], web.Response]

# An organisation without Cloud Network Monitoring: its CNM endpoints answer a bare 400.
CNM_ENDPOINTS = frozenset({"connections", "dns"})
NO_CNM_BODY = {"errors": ["Bad Request"]}


def _forbidden(headers: dict[str, str]) -> web.Response:
    return json_response(403, {"errors": ["Forbidden"]}, headers)


def _authorized(request: web.Request, state: SimulatorState) -> bool:
    return (
        request.headers.get("DD-API-KEY") == state.options.api_key
        and request.headers.get("DD-APPLICATION-KEY") == state.options.app_key
    )


async def _read_json(request: web.Request) -> tuple[Any, bool]:
    """The decoded body (None when empty) and whether it was valid JSON."""
    raw = await request.read()
    if not raw:
        return None, True
    try:
        return msgspec.json.decode(raw), True
    except msgspec.DecodeError:
        return None, False


def datadog_route(
    endpoint: EndpointName, compute: Compute
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        body, valid_json = await _read_json(request) if request.can_read_body else (None, True)
        record = RequestRecord(
            endpoint=endpoint,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            body=body,
            status=None,
        )
        state.request_log.append(record)
        verdict = state.limiter.hit(endpoint)
        headers = verdict.headers
        response: web.StreamResponse
        blocked = state.limiter.blocked_for(endpoint)
        fault = None if blocked else state.faults.take(endpoint)
        if blocked:
            response = json_response(429, {"errors": ["Rate limit exceeded"]}, headers)
        elif fault is not None and fault.kind in REPLACING_KINDS:
            if fault.kind == "rate_limit":
                state.limiter.block(endpoint, fault.reset_seconds)
            if fault.kind != "hang":
                record.status = fault.http_status
            response = await replace_answer(request, endpoint, fault, headers, state.closing)
            record.status = response.status
            return response
        elif not _authorized(request, state):
            response = _forbidden(headers)
        elif not verdict.allowed:
            response = json_response(429, {"errors": ["Rate limit exceeded"]}, headers)
        elif endpoint in CNM_ENDPOINTS and not state.options.cnm_enabled:
            response = json_response(400, NO_CNM_BODY, headers)
        elif not valid_json:
            response = json_response(
                400, ApiError(400, "Bad Request", "request body is not valid JSON").body(), headers
            )
        else:
            try:
                response = compute(request, state, body)
            except ApiError as exc:
                response = json_response(exc.status, exc.body(), headers)
            else:
                response.headers.update(headers)
        record.status = response.status
        assert isinstance(response, web.Response)
        return await deliver(request, response, fault, state.closing)

    return handler


def _ok(body: bytes) -> web.Response:
    return web.Response(status=200, body=body, content_type=JSON_API)


def _network_answer(
    request: web.Request, state: SimulatorState, endpoint: Literal["connections", "dns"]
) -> web.Response:
    """The two CNM aggregate endpoints share parameters and caching; only the rows differ."""
    query = parse_network_params(request.query, now=int(state.clock()), dns=endpoint == "dns")
    key = (endpoint, query.keys, query.filter_key, query.start, query.end, query.limit)
    scenarios = tuple(state.scenarios)

    def build() -> bytes:
        rows = state.network.rows(
            endpoint,
            keys=query.keys,
            filter_key=query.filter_key,
            predicate=query.predicate,
            start=query.start,
            end=query.end,
            limit=query.limit,
            scenarios=scenarios,
        )
        return msgspec.json.encode({"data": rows})

    return _ok(state.cached_answer(key, build))


def _connections(request: web.Request, state: SimulatorState, _body: Any) -> web.Response:
    return _network_answer(request, state, "connections")


def _dns(request: web.Request, state: SimulatorState, _body: Any) -> web.Response:
    return _network_answer(request, state, "dns")


def _cases(_request: web.Request, state: SimulatorState, body: Any) -> web.Response:
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


def _audience(request: web.Request, _state: SimulatorState, _body: Any) -> web.Response:
    entity = request.match_info["entity"]
    answer = list_connections(entity)
    if answer is None:
        raise ApiError(404, "Not Found", f"entity {entity!r} does not exist", shape="code")
    return _ok(msgspec.json.encode(answer))


# -- control routes (no Datadog auth) ---------------------------------------


def _bad_control(message: str) -> web.Response:
    return json_response(400, {"errors": [message]}, {})


async def _post_fault(request: web.Request) -> web.Response:
    body, valid = await _read_json(request)
    try:
        if not valid:
            raise OptionError("body is not valid JSON")
        target, fault = fault_from_json(body)
    except OptionError as exc:
        return _bad_control(str(exc))
    request.app[STATE].faults.set(target, fault)
    return json_response(200, {"endpoint": target, "fault": msgspec.to_builtins(fault)}, {})


async def _get_faults(request: web.Request) -> web.Response:
    active = request.app[STATE].faults.active()
    return json_response(200, {k: msgspec.to_builtins(v) for k, v in active.items()}, {})


async def _delete_faults(request: web.Request) -> web.Response:
    request.app[STATE].clear_faults()
    return json_response(200, {"cleared": True}, {})


async def _post_scenario(request: web.Request) -> web.Response:
    body, valid = await _read_json(request)
    try:
        if not valid:
            raise OptionError("body is not valid JSON")
        scenario = scenario_from_json(body)
    except OptionError as exc:
        return _bad_control(str(exc))
    request.app[STATE].set_scenario(scenario)
    return json_response(200, {"scenario": msgspec.to_builtins(scenario)}, {})


async def _delete_scenarios(request: web.Request) -> web.Response:
    request.app[STATE].clear_scenarios()
    return json_response(200, {"cleared": True}, {})


async def _get_requests(request: web.Request) -> web.Response:
    records = [r.to_json() for r in request.app[STATE].request_log]
    return json_response(200, {"requests": records}, {})


async def _delete_requests(request: web.Request) -> web.Response:
    request.app[STATE].request_log.clear()
    return json_response(200, {"cleared": True}, {})


async def _on_shutdown(app: web.Application) -> None:
    app[STATE].closing.set()  # releases hanging and dripping handlers


# Requests may carry a raw fault's body (base64, a third larger) as big as the exporter's
# default max_response_size; aiohttp's own limit is 1 MiB.
MAX_REQUEST_BYTES = 128 * 1024 * 1024


def build_app(state: SimulatorState) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[STATE] = state
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get(
        "/api/v2/network/connections/aggregate", datadog_route("connections", _connections)
    )
    app.router.add_get("/api/v2/network/dns/aggregate", datadog_route("dns", _dns))
    app.router.add_post("/api/v2/cases/aggregate", datadog_route("cases", _cases))
    app.router.add_get(
        "/api/v2/product-analytics/{entity}/mapping/connections",
        datadog_route("audience", _audience),
    )
    app.router.add_get("/_simulator/faults", _get_faults)
    app.router.add_post("/_simulator/faults", _post_fault)
    app.router.add_delete("/_simulator/faults", _delete_faults)
    app.router.add_post("/_simulator/scenario", _post_scenario)
    app.router.add_delete("/_simulator/scenario", _delete_scenarios)
    app.router.add_get("/_simulator/requests", _get_requests)
    app.router.add_delete("/_simulator/requests", _delete_requests)
    return app
