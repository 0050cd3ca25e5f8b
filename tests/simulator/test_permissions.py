"""The simulator checks an API key as ``GET /api/v1/validate`` does, and can be told that
the application key lacks one endpoint's permission."""

from __future__ import annotations

import aiohttp
import pytest

from simulator import Simulator, SimulatorOptions
from simulator.__main__ import parse_args
from simulator.options import OptionError

from .support import AUTH, CASES, CONNECTIONS, cases_body


async def test_validate_checks_the_api_key_only(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.get("/api/v1/validate") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == {"valid": True}
    wrong_app = {**AUTH, "DD-APPLICATION-KEY": "anything"}
    async with http.get("/api/v1/validate", headers=wrong_app) as response:
        assert response.status == 200
    async with http.get("/api/v1/validate", headers={"DD-API-KEY": "nope"}) as response:
        assert response.status == 403
        assert await response.json() == {"errors": ["Forbidden"]}
    assert [r.status for r in sim.requests_to("validate")] == [200, 200, 403]


@pytest.mark.parametrize("options", [SimulatorOptions(denied_endpoints=("cases",))])
async def test_a_denied_endpoint_answers_403_and_the_others_work(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post(CASES, json=cases_body(["status"])) as response:
        assert response.status == 403
        body = await response.json()
    assert body["errors"][0]["detail"] == "Failed permission authorization checks"
    async with http.get(CONNECTIONS, params={"limit": "1"}) as response:
        assert response.status == 200
    async with http.get("/api/v1/validate") as response:
        assert response.status == 200


def test_an_unknown_denied_endpoint_is_refused() -> None:
    with pytest.raises(OptionError, match="denied endpoint 'case'"):
        Simulator(SimulatorOptions(denied_endpoints=("case",)))


def test_the_cli_flag_sets_the_denied_endpoints() -> None:
    args = parse_args(["--deny-permission", "cases", "--deny-permission", "dns"])
    assert args.deny_permission == ["cases", "dns"]
