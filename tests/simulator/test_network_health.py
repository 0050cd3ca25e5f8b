"""The simulated Network Health Insights endpoint: one answer per window (history), from/to
read as Datadog documents them, and its three scenarios (a certificate crossing 14 days to
expiry, a DNS failure burst, a security-group denial)."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest

from simulator import Scenario, Simulator
from simulator.network_health import answer
from simulator.options import OptionError, scenario_from_cli

from .support import AUTH

PATH = "/api/v2/network-health-insights"
MIDNIGHT = 1_714_521_600  # 2024-05-01T00:00:00Z
DAY = 86400


def insights(start: int, end: int, *scenarios: Scenario) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = msgspec.json.decode(answer(start, end, scenarios))["data"]
    return [row["attributes"] for row in data]


def one(rows: list[dict[str, Any]], **match: str) -> dict[str, Any]:
    (found,) = [row for row in rows if all(row.get(k) == v for k, v in match.items())]
    return found


async def test_the_http_answer_is_the_windows_answer_whenever_asked(sim: Simulator) -> None:
    params = {"from": str(MIDNIGHT - 900), "to": str(MIDNIGHT)}
    async with (
        aiohttp.ClientSession(base_url=sim.url, headers=AUTH) as http,
        http.get(PATH, params=params) as response,
    ):
        assert response.status == 200
        assert response.headers["X-RateLimit-Name"] == "network_health_insights"
        served = await response.read()
    assert served == answer(MIDNIGHT - 900, MIDNIGHT)
    assert served == Simulator(sim.options).answer("network_health", params)


@pytest.mark.parametrize(
    "params", [{"from": "yesterday"}, {"to": "1.5"}, {"from": "200", "to": "100"}]
)
async def test_a_bad_window_is_a_400(sim: Simulator, params: dict[str, str]) -> None:
    async with (
        aiohttp.ClientSession(base_url=sim.url, headers=AUTH) as http,
        http.get(PATH, params=params) as response,
    ):
        assert response.status == 400


def test_answers_vary_with_the_window_and_totals_scale_with_its_length() -> None:
    short = one(insights(MIDNIGHT - 300, MIDNIGHT), type="tcp", client_service="api-gateway")
    long = one(insights(MIDNIGHT - 3000, MIDNIGHT), type="tcp", client_service="api-gateway")
    assert 9 <= long["total_requests"] / short["total_requests"] <= 11
    later = one(insights(MIDNIGHT, MIDNIGHT + 300), type="tcp", client_service="api-gateway")
    assert later["total_requests"] != short["total_requests"]


def test_every_category_is_served_and_certificates_run_down_a_day_a_day() -> None:
    today = insights(MIDNIGHT - 900, MIDNIGHT)
    assert {row["type"] for row in today} == {"dns", "tcp", "tls-cert", "security-group"}
    tomorrow = insights(MIDNIGHT - 900 + DAY, MIDNIGHT + DAY)
    for row in today:
        if row["type"] == "tls-cert":
            later = one(tomorrow, domain_name=row["domain_name"])
            days = row["days_until_expiration"]
            # renewed at 30 days left, to 89
            assert later["days_until_expiration"] == (days - 1 if days > 30 else 89)
            assert 30 <= days <= 89


def test_a_certificate_crosses_14_days_to_expiry_then_expires() -> None:
    scenario = Scenario(
        "nhi_certificate_expiry", {"domain_name": "api.example.com"}, 15.0, MIDNIGHT
    )
    days = [
        one(insights(t - 900, t, scenario), domain_name="api.example.com")
        for t in (MIDNIGHT + 3600, MIDNIGHT + DAY + 3600, MIDNIGHT + 15 * DAY + 3600)
    ]
    assert [d["days_until_expiration"] for d in days] == [15, 14, 0]
    assert [d["failure_type"] for d in days] == ["expiring_soon", "expiring_soon", "expired"]
    assert days[2]["certificate_lifetime_percent"] == 100.0
    # other certificates are untouched, and so is the window before the scenario
    before = one(insights(MIDNIGHT - 900, MIDNIGHT - 1, scenario), domain_name="api.example.com")
    assert before["days_until_expiration"] >= 30
    t = MIDNIGHT + DAY
    assert one(insights(t - 900, t, scenario), domain_name="shop.example.com") == one(
        insights(t - 900, t), domain_name="shop.example.com"
    )


def test_a_dns_failure_burst_multiplies_the_matching_failures_only() -> None:
    burst = Scenario("nhi_dns_failure_burst", {"client_service": "checkout"}, 25.0)
    calm = insights(MIDNIGHT - 900, MIDNIGHT)
    loud = insights(MIDNIGHT - 900, MIDNIGHT, burst)
    before = one(calm, type="dns", client_service="checkout")
    after = one(loud, type="dns", client_service="checkout")
    assert after["total_requests"] == before["total_requests"]
    assert after["failure_rate"] >= 20 * before["failure_rate"]
    assert one(loud, type="dns", client_service="frontend") == one(
        calm, type="dns", client_service="frontend"
    )


def test_a_security_group_denial_appears_between_the_matched_services() -> None:
    denial = Scenario(
        "nhi_security_group_denial",
        {"client_service": "batch-jobs", "server_service": "kafka"},
        factor=50.0,
        start=MIDNIGHT,
        end=MIDNIGHT + 3600,
    )
    during = insights(MIDNIGHT + 600, MIDNIGHT + 1500, denial)
    row = one(during, type="security-group", client_service="batch-jobs")
    assert (row["server_service"], row["failure_type"]) == ("kafka", "denied")
    assert row["failure_rate"] >= 4.0
    after = insights(MIDNIGHT + 3600, MIDNIGHT + 4500, denial)
    assert not [r for r in after if r.get("client_service") == "batch-jobs"]


def test_scenarios_parse_from_the_command_line() -> None:
    scenario = scenario_from_cli(
        f"nhi_certificate_expiry:domain_name=shop.example.com:15:{MIDNIGHT}-{MIDNIGHT + DAY}"
    )
    assert (scenario.kind, scenario.factor, scenario.start) == (
        "nhi_certificate_expiry",
        15.0,
        MIDNIGHT,
    )
    with pytest.raises(OptionError):
        scenario_from_cli("nhi_certificate_expiry::0")


def test_a_tcp_failure_burst_multiplies_the_matching_tcp_failures_only() -> None:
    burst = Scenario("nhi_tcp_failure_burst", {"server_service": "inventory"}, 30.0)
    calm = insights(MIDNIGHT - 900, MIDNIGHT)
    loud = insights(MIDNIGHT - 900, MIDNIGHT, burst)
    before = one(calm, type="tcp", server_service="inventory")
    after = one(loud, type="tcp", server_service="inventory")
    assert after["total_requests"] == before["total_requests"]
    assert after["failure_rate"] >= 25 * before["failure_rate"]
    assert one(loud, type="tcp", server_service="postgres-main") == one(
        calm, type="tcp", server_service="postgres-main"
    )
    assert [r for r in loud if r["type"] != "tcp"] == [r for r in calm if r["type"] != "tcp"]


def test_a_blending_burst_shows_gradually_as_the_window_fills_with_it() -> None:
    """With ``blend`` a window partly covered mixes the failures with and without the
    burst by the share it covers; requests are the window's either way."""
    start = MIDNIGHT + 3600
    burst = Scenario(
        "nhi_dns_failure_burst", {"client_service": "frontend"}, 50.0, start, start + 3600, True
    )
    rows = [
        one(insights(to - 300, to, burst), type="dns", client_service="frontend")
        for to in (start, start + 75, start + 150, start + 300, start + 3600 + 150)
    ]
    rates = [row["failure_rate"] for row in rows]
    assert rates[0] < 1 and rates[3] > 8
    assert rates[0] < rates[1] < rates[2] < rates[3]
    assert 0.35 * rates[3] < rates[2] < 0.65 * rates[3]  # half the window: about half
    assert 0.35 * rates[3] < rates[4] < 0.65 * rates[3]  # and half again as it leaves
    plain = [
        one(insights(to - 300, to), type="dns", client_service="frontend")
        for to in (start, start + 75, start + 150, start + 300, start + 3600 + 150)
    ]
    assert [r["total_requests"] for r in rows] == [r["total_requests"] for r in plain]
    # Without blend a window is shaped all or nothing, by its end.
    sharp = Scenario("nhi_dns_failure_burst", {"client_service": "frontend"}, 50.0, start)
    half = one(insights(start - 150, start + 150, sharp), type="dns", client_service="frontend")
    assert half["failure_rate"] > 8


def test_a_denial_that_appears_blends_in_with_the_pairs_requests_over_the_window() -> None:
    start = MIDNIGHT + 3600
    denial = Scenario(
        "nhi_security_group_denial",
        {"client_service": "batch-jobs", "server_service": "kafka"},
        100.0,
        start,
        start + 3600,
        True,
    )
    half = one(insights(start - 150, start + 150, denial), client_service="batch-jobs")
    full = one(insights(start, start + 300, denial), client_service="batch-jobs")
    assert half["total_requests"] > 0.6 * full["total_requests"]
    assert 0.35 * full["failure_rate"] < half["failure_rate"] < 0.65 * full["failure_rate"]
    assert not [
        r
        for r in insights(start - 600, start - 300, denial)
        if r.get("client_service") == "batch-jobs"
    ]


def test_a_certificate_is_read_at_the_end_of_the_window_blended_or_not() -> None:
    expiry = Scenario(
        "nhi_certificate_expiry", {"domain_name": "shop.example.com"}, 0.5, MIDNIGHT, None, True
    )
    row = one(insights(MIDNIGHT - 150, MIDNIGHT + 150, expiry), domain_name="shop.example.com")
    assert (row["days_until_expiration"], row["failure_type"]) == (0, "expired")
    before = one(insights(MIDNIGHT - 300, MIDNIGHT - 1, expiry), domain_name="shop.example.com")
    assert before["days_until_expiration"] >= 30


def test_quiet_pairs_have_failure_insights_under_a_request_a_second() -> None:
    rows = [r for r in insights(MIDNIGHT - 300, MIDNIGHT) if r["type"] in ("dns", "tcp")]
    quiet = {r["client_service"] for r in rows if r["total_requests"] < 300}
    assert quiet == {"nightly-reports", "cron"}
