"""Which faults are armed, and how each misbehaviour is written to the wire.

Owns the fault bookkeeping (per endpoint, counted) and the response writers
for every fault kind; it must not validate requests or compute data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec
from aiohttp import web

from simulator.endpoint import JSON_API, Endpoint
from simulator.errors import error_body, html_page
from simulator.options import Fault, OptionError

JSON = "application/json"
HUGE_CHUNK = 256 * 1024
DEFAULT_DRIP_PAUSE = 0.05

# Faults that replace the answer outright (the request is never looked at).
REPLACING_KINDS = frozenset(
    (
        "status",
        "rate_limit",
        "html",
        "malformed",
        "wrong_shape",
        "huge",
        "hang",
        "redirect",
        "raw",
    )
)

MALFORMED_BODY = b'{"data": [{"id": "broken", "attributes": {"bytes_sent_by_client": 12,, }]'


@dataclass(slots=True)
class _Armed:
    fault: Fault
    left: int | None


class FaultBook:
    """The armed faults: one per target ("*" applies where no specific one is armed)."""

    def __init__(self, targets: Iterable[str]) -> None:
        self.targets = tuple(targets)
        self._armed: dict[str, _Armed] = {}

    def set(self, target: str, fault: Fault) -> None:
        """Arm ``fault`` for ``target``; OptionError when it names no endpoint."""
        if target not in self.targets:
            raise OptionError(
                f"unknown endpoint {target!r}: must be one of {', '.join(self.targets)}"
            )
        self._armed[target] = _Armed(fault, fault.count)

    def clear(self) -> None:
        self._armed.clear()

    def active(self) -> dict[str, Fault]:
        return {target: armed.fault for target, armed in self._armed.items()}

    def take(self, endpoint: str) -> Fault | None:
        """The fault for this request, if any, counting it against the fault's budget."""
        for target in (endpoint, "*"):
            armed = self._armed.get(target)
            if armed is None:
                continue
            if armed.left is not None:
                armed.left -= 1
                if armed.left <= 0:
                    del self._armed[target]
            return armed.fault
        return None


def json_response(
    status: int, body: object, headers: dict[str, str], content_type: str = JSON
) -> web.Response:
    return web.Response(
        status=status,
        body=msgspec.json.encode(body),
        headers=headers,
        content_type=content_type,
    )


async def _wait(closing: asyncio.Event, seconds: float | None) -> bool:
    """Sleep up to `seconds` (forever when None); True when the simulator is stopping."""
    try:
        await asyncio.wait_for(closing.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


async def replace_answer(
    request: web.Request,
    endpoint: Endpoint,
    fault: Fault,
    headers: dict[str, str],
    closing: asyncio.Event,
) -> web.StreamResponse:
    """Answer with the misbehaviour itself (kinds in REPLACING_KINDS)."""
    status = fault.http_status
    if fault.kind == "status":
        body = error_body(status, fault.error_shape, detail=fault.detail)
        if fault.retry_after is not None:
            headers = {**headers, "Retry-After": str(fault.retry_after)}
        return json_response(status, body, headers)
    if fault.kind == "rate_limit":
        headers = {
            **headers,
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(fault.reset_seconds),
        }
        return json_response(429, {"errors": ["Rate limit exceeded"]}, headers)
    if fault.kind == "html":
        return web.Response(
            status=status, text=html_page(status), headers=headers, content_type="text/html"
        )
    if fault.kind == "malformed":
        return web.Response(body=MALFORMED_BODY, headers=headers, content_type=JSON_API)
    if fault.kind == "wrong_shape":
        wrong = endpoint.wrong_shape if fault.body is None else fault.body
        return json_response(200, wrong, headers, JSON_API)
    if fault.kind == "redirect":
        return web.Response(
            status=status, headers={**headers, "Location": fault.location}, text="moved"
        )
    if fault.kind == "huge":
        return await _stream_huge(request, endpoint, fault.size_bytes, headers, closing)
    if fault.kind == "raw":
        # The header, not content_type=: aiohttp would refuse parameters such as charset.
        headers = {**headers, **fault.raw_headers, "Content-Type": fault.content_type}
        return web.Response(status=status, body=fault.raw_body, headers=headers)
    # hang: answer nothing until the client gives up or the simulator stops.
    await _wait(closing, fault.seconds)
    return json_response(503, error_body(503, detail="hang fault ended"), headers)


async def _stream_huge(
    request: web.Request,
    endpoint: Endpoint,
    size: int,
    headers: dict[str, str],
    closing: asyncio.Event,
) -> web.StreamResponse:
    """Valid JSON of exactly `size` bytes, sent chunked without a Content-Length."""
    prefix, item, suffix = endpoint.huge_parts
    response = web.StreamResponse(status=200, headers=headers)
    response.content_type = JSON_API
    response.enable_chunked_encoding()
    await response.prepare(request)
    budget = size - len(prefix) - len(suffix)
    count = max(0, (budget + 1) // (len(item) + 1))
    padding = max(0, budget - (count * (len(item) + 1) - 1 if count else 0))
    chunk_items = max(1, HUGE_CHUNK // (len(item) + 1))
    await response.write(prefix)
    written = 0
    while written < count and not closing.is_set():
        n = min(chunk_items, count - written)
        lead = b"," if written else b""
        await response.write(lead + b",".join([item] * n))
        written += n
    await response.write(b" " * padding + suffix)
    await response.write_eof()
    return response


async def deliver(
    request: web.Request,
    response: web.Response,
    fault: Fault | None,
    closing: asyncio.Event,
) -> web.StreamResponse:
    """Send a computed answer, slowed or damaged by a latency/drip/truncated fault."""
    if fault is None:
        return response
    body = response.body
    assert isinstance(body, bytes)
    if fault.kind == "latency":
        await _wait(closing, fault.seconds if fault.seconds is not None else 1.0)
        return response
    if fault.kind == "truncated":
        response.body = body[: max(1, len(body) // 2)]
        return response
    if fault.kind == "drip":
        stream = web.StreamResponse(status=response.status, headers=response.headers)
        stream.content_length = len(body)
        await stream.prepare(request)
        pause = fault.seconds if fault.seconds is not None else DEFAULT_DRIP_PAUSE
        for offset in range(0, len(body), fault.chunk_size):
            if closing.is_set():  # stopping: send the rest at once
                await stream.write(body[offset:])
                break
            await stream.write(body[offset : offset + fault.chunk_size])
            await _wait(closing, pause)
        await stream.write_eof()
        return stream
    return response
