"""The aiohttp application: Datadog's routes (one per entry of `endpoints.ENDPOINTS`), auth,
rate limits, faults, control routes.

Each Datadog request goes through the same steps, in this order: log it,
count it against its endpoint's budget (headers on every answer), answer 429
while a rate_limit fault's reset period runs, apply an armed replacing fault,
check the keys (403), answer 403 on an endpoint the key lacks the permission for, answer 429
over budget, answer a bare 400 on the CNM endpoints of an
organisation without CNM, validate (400) and compute the answer, then deliver it (possibly
slowed or damaged by a fault).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from simulator.endpoint import Endpoint
from simulator.endpoints import ENDPOINTS
from simulator.errors import ErrorAnswer
from simulator.faults import REPLACING_KINDS, deliver, json_response, replace_answer
from simulator.options import OptionError, fault_from_json, scenario_from_json
from simulator.state import RequestRecord, SimulatorState

STATE: web.AppKey[SimulatorState] = web.AppKey("simulator_state", SimulatorState)

# An organisation without Cloud Network Monitoring: its CNM endpoints answer a bare 400.
NO_CNM_BODY = {"errors": ["Bad Request"]}
# A valid application key without the endpoint's permission (SimulatorOptions.denied_endpoints).
PERMISSION_DENIED_BODY = {
    "errors": [
        {"status": "403", "title": "Forbidden", "detail": "Failed permission authorization checks"}
    ]
}
# GET /api/v1/validate (checks the API key only), as Datadog documents it.
VALIDATE_PATH = "/api/v1/validate"
VALIDATE_ENDPOINT = "validate"


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


def datadog_route(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    name = endpoint.name

    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        body, valid_json = await _read_json(request) if request.can_read_body else (None, True)
        record = _log_request(state, request, name, body)
        verdict = state.limiter.hit(name)
        headers = verdict.headers
        response: web.StreamResponse
        blocked = state.limiter.blocked_for(name)
        fault = None if blocked else state.faults.take(name)
        if blocked:
            response = json_response(429, {"errors": ["Rate limit exceeded"]}, headers)
        elif fault is not None and fault.kind in REPLACING_KINDS:
            if fault.kind == "rate_limit":
                state.limiter.block(name, fault.reset_seconds)
            if fault.kind != "hang":
                record.status = fault.http_status
            response = await replace_answer(request, endpoint, fault, headers, state.closing)
            record.status = response.status
            return response
        elif not _authorized(request, state):
            response = _forbidden(headers)
        elif name in state.options.denied_endpoints:
            response = json_response(403, PERMISSION_DENIED_BODY, headers)
        elif not verdict.allowed:
            response = json_response(429, {"errors": ["Rate limit exceeded"]}, headers)
        elif endpoint.cnm and not state.options.cnm_enabled:
            response = json_response(400, NO_CNM_BODY, headers)
        elif not valid_json:
            response = json_response(
                400,
                ErrorAnswer(400, "Bad Request", "request body is not valid JSON").body(),
                headers,
            )
        else:
            try:
                response = endpoint.compute(request, state, body)
            except ErrorAnswer as exc:
                response = json_response(exc.status, exc.body(), headers)
            else:
                response.headers.update(headers)
        record.status = response.status
        assert isinstance(response, web.Response)
        return await deliver(request, response, fault, state.closing)

    return handler


def _log_request(
    state: SimulatorState, request: web.Request, endpoint: str, body: Any
) -> RequestRecord:
    """Record a request in the log the tests count (its status is decided later)."""
    record = RequestRecord(
        endpoint=endpoint,
        method=request.method,
        path=request.path,
        query=dict(request.query),
        body=body,
        status=None,
    )
    record.at = state.clock()
    state.request_log.append(record)
    return record


async def _validate(request: web.Request) -> web.Response:
    """``GET /api/v1/validate``: 200 ``{"valid": true}`` for the right API key (the
    application key is not looked at), else 403 ``{"errors": ["Forbidden"]}``."""
    state = request.app[STATE]
    record = _log_request(state, request, VALIDATE_ENDPOINT, None)
    if request.headers.get("DD-API-KEY") == state.options.api_key:
        response = json_response(200, {"valid": True}, {})
    else:
        response = _forbidden({})
    record.status = response.status
    return response


# -- control routes (no Datadog auth) ---------------------------------------


def _bad_control(message: str) -> web.Response:
    return json_response(400, {"errors": [message]}, {})


async def _post_fault(request: web.Request) -> web.Response:
    body, valid = await _read_json(request)
    try:
        if not valid:
            raise OptionError("body is not valid JSON")
        target, fault = fault_from_json(body)
        request.app[STATE].faults.set(target, fault)
    except OptionError as exc:
        return _bad_control(str(exc))
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
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, datadog_route(endpoint))
    app.router.add_get(VALIDATE_PATH, _validate)
    app.router.add_get("/_simulator/faults", _get_faults)
    app.router.add_post("/_simulator/faults", _post_fault)
    app.router.add_delete("/_simulator/faults", _delete_faults)
    app.router.add_post("/_simulator/scenario", _post_scenario)
    app.router.add_delete("/_simulator/scenario", _delete_scenarios)
    app.router.add_get("/_simulator/requests", _get_requests)
    app.router.add_delete("/_simulator/requests", _delete_requests)
    return app
