"""The simulator's stand-ins for a hostile or unusual Datadog: redirects, an organisation
without Cloud Network Monitoring, and HTTPS."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
import trustme

from simulator import Fault, Simulator, SimulatorOptions
from simulator.options import OptionError, fault_from_cli

from .support import AUTH, CASES, CONNECTIONS, DNS, cases_body


async def test_redirect_fault_answers_3xx_with_the_location(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    sim.set_fault("dns", Fault(kind="redirect", status=307, location="http://x.example/y?z"))
    async with http.get(DNS, allow_redirects=False) as response:
        assert response.status == 307
        assert response.headers["Location"] == "http://x.example/y?z"
    assert [r.status for r in sim.request_log] == [307]


def test_redirect_fault_from_the_cli_keeps_the_colons_of_its_location() -> None:
    target, fault = fault_from_cli("connections:redirect:https://elsewhere.example:8443/p")
    assert (target, fault.kind, fault.location) == (
        "connections",
        "redirect",
        "https://elsewhere.example:8443/p",
    )
    assert fault.http_status == 302


def test_a_redirect_must_have_a_3xx_status() -> None:
    with pytest.raises(OptionError, match="3xx"):
        Fault(kind="redirect", status=200)


@pytest.mark.parametrize("options", [SimulatorOptions(cnm_enabled=False)])
async def test_without_cnm_the_cnm_endpoints_answer_a_bare_400(
    http: aiohttp.ClientSession,
) -> None:
    for path in (CONNECTIONS, DNS):
        async with http.get(path) as response:
            assert response.status == 400
            assert await response.json() == {"errors": ["Bad Request"]}
    async with http.post(CASES, json=cases_body(["status"])) as response:
        assert response.status == 200


async def test_the_simulator_serves_https_with_a_given_context() -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    sim = Simulator()
    await sim.start("127.0.0.1", 0, ssl_context=server)
    try:
        assert sim.url.startswith("https://127.0.0.1:")
        async with (
            aiohttp.ClientSession(base_url=sim.url, headers=AUTH) as http,
            http.get(CONNECTIONS, ssl=client) as response,
        ):
            assert response.status == 200
    finally:
        await sim.stop()
