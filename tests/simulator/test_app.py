"""`sim.app` also runs under pytest-aiohttp's own test server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from simulator import Fault, Simulator

from .support import AUTH, CONNECTIONS

ServerFactory = Callable[..., Awaitable[TestServer]]


async def test_app_serves_under_aiohttp_server(aiohttp_server: ServerFactory) -> None:
    sim = Simulator()
    server = await aiohttp_server(sim.app)
    sim.set_fault("connections", Fault(kind="status", status=502, count=1))
    async with ClientSession(base_url=str(server.make_url("/")), headers=AUTH) as http:
        async with http.get(CONNECTIONS) as response:
            assert response.status == 502
        async with http.get(CONNECTIONS) as response:
            assert response.status == 200
    assert [r.status for r in sim.request_log] == [502, 200]
