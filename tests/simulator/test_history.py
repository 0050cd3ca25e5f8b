"""History: any window has one deterministic answer, and answers vary with time (a daily
rhythm, incidents bounded in time), so a backfill can be checked point by point."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest

from simulator import Scenario, Simulator
from simulator.data import daily_factor
from simulator.history import NetworkEndpoint
from simulator.options import OptionError, scenario_from_cli

from .support import AUTH, CONNECTIONS, DNS

MIDNIGHT = 1_714_521_600  # 2024-05-01T00:00:00Z
PAIR = {"client_service": "checkout", "server_service": "payments-db"}


def _params(to: int, window: int = 600, **extra: str) -> dict[str, str]:
    return {"from": str(to - window), "to": str(to), "limit": "1000", **extra}


def _rows(body: bytes) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = msgspec.json.decode(body)["data"]
    return rows


async def test_the_http_answer_is_what_answer_computes_without_a_server(sim: Simulator) -> None:
    for path, endpoint in ((CONNECTIONS, "connections"), (DNS, "dns")):
        params = _params(MIDNIGHT + 15 * 3600, group_by="client_service,server_service")
        async with (
            aiohttp.ClientSession(base_url=sim.url, headers=AUTH) as http,
            http.get(path, params=params) as response,
        ):
            served = await response.read()
        assert served == Simulator(sim.options).answer(endpoint, params)  # type: ignore[arg-type]


def test_a_window_answers_the_same_whenever_it_is_asked() -> None:
    early = Simulator(clock=lambda: MIDNIGHT + 86400.0)
    late = Simulator(clock=lambda: MIDNIGHT + 13 * 86400.0)
    params = _params(MIDNIGHT + 3600, group_by="client_service")
    assert early.answer("connections", params) == late.answer("connections", params)
    assert early.answer("dns", params) == late.answer("dns", params)


def _total(sim: Simulator, endpoint: NetworkEndpoint, to: int) -> float:
    body = sim.answer(endpoint, _params(to))
    total: float
    if endpoint == "dns":
        total = sum(
            m["value"]
            for row in _rows(body)
            for m in row["attributes"]["metrics"]
            if m["key"] == "dns_total_requests"
        )
    else:
        total = sum(row["attributes"]["bytes_sent_by_client"] for row in _rows(body))
    return total


@pytest.mark.parametrize("endpoint", ["connections", "dns"])
def test_traffic_has_a_daily_rhythm_busiest_in_the_afternoon(endpoint: NetworkEndpoint) -> None:
    sim = Simulator()
    afternoon = [_total(sim, endpoint, MIDNIGHT + 15 * 3600 + k * 300) for k in range(-6, 6)]
    night = [_total(sim, endpoint, MIDNIGHT + 3 * 3600 + k * 300) for k in range(-6, 6)]
    assert sum(afternoon) > 1.5 * sum(night)
    assert daily_factor(15 * 12) == pytest.approx(1.3) and daily_factor(3 * 12) == pytest.approx(
        0.7
    )


def _retransmit_ratio(sim: Simulator, to: int) -> float:
    params = _params(to, group_by="client_service,server_service")
    [row] = [
        r
        for r in _rows(sim.answer("connections", params))
        if r["attributes"]["group_bys"] == {k: [v] for k, v in PAIR.items()}
    ]
    attributes = row["attributes"]
    return float(attributes["tcp_retransmits"] / attributes["packets_sent_by_client"])


def test_a_storm_on_a_known_afternoon_shapes_only_the_windows_ending_in_it() -> None:
    start, end = MIDNIGHT + 14 * 3600, MIDNIGHT + 16 * 3600
    sim = Simulator()
    sim.set_scenario(Scenario("retransmit_storm", PAIR, start=start, end=end))
    assert _retransmit_ratio(sim, start) >= 0.2
    assert _retransmit_ratio(sim, end - 300) >= 0.2
    assert _retransmit_ratio(sim, start - 300) < 0.05
    assert _retransmit_ratio(sim, end) < 0.05


def test_time_bounds_parse_from_the_command_line_and_are_checked() -> None:
    scenario = scenario_from_cli("retransmit_storm:client_service=checkout:20:100-200")
    assert (scenario.factor, scenario.start, scenario.end) == (20.0, 100, 200)
    assert scenario.active_at(100) and scenario.active_at(199) and not scenario.active_at(200)
    with pytest.raises(OptionError, match="START-END"):
        scenario_from_cli("retransmit_storm:client_service=checkout:20:soon")
    with pytest.raises(OptionError, match="before end"):
        Scenario("rtt_spike", start=200, end=100)
