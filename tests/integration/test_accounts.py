"""Two Datadog organisations in one exporter: each query goes to its own account's URL with
its own keys, and a 429 in one organisation does not slow the other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from exporter.app import Exporter, RunOptions, build_exporter
from exporter.config.schema import parse_config
from exporter.datadog.credentials import CredentialsError
from exporter.logs import Redactor
from exporter.scheduler import PollPolicy
from simulator import Fault, Simulator, SimulatorOptions
from tests.helpers import Samples, parse_metrics
from tests.integration.conftest import credentials

EU_KEYS = ("eu-api-key-0123456789abcdef", "eu-app-key-0123456789abcdef0123")
US_KEYS = ("us-api-key-fedcba9876543210", "us-app-key-fedcba9876543210fedc")


def config_text(eu_url: str, us_url: str, interval: str = "1h") -> str:
    return f"""
accounts:
  - name: eu
    api_url: {eu_url}
    api_key_env: DD_EU_API_KEY
    app_key_env: DD_EU_APP_KEY
    timeout: 2s
  - name: us
    api_url: {us_url}
    api_key_file: {{us_dir}}/api-key
    app_key_file: {{us_dir}}/app-key
    timeout: 2s
connections:
  - name: eu_pairs
    account: eu
    group_by: [client_service, server_service]
    interval: {interval}
  - {{name: us_clients, account: us, group_by: [client_service], interval: {interval}}}
"""


@pytest.fixture
async def simulators() -> AsyncIterator[tuple[Simulator, Simulator]]:
    eu = Simulator(SimulatorOptions(api_key=EU_KEYS[0], app_key=EU_KEYS[1], seed=1))
    us = Simulator(SimulatorOptions(api_key=US_KEYS[0], app_key=US_KEYS[1], seed=2))
    await eu.start(host="127.0.0.1", port=0)
    await us.start(host="127.0.0.1", port=0)
    try:
        yield eu, us
    finally:
        await eu.stop()
        await us.stop()


def build(
    simulators: tuple[Simulator, Simulator], tmp_path: Path, interval: str = "1h"
) -> Exporter:
    eu, us = simulators
    (tmp_path / "api-key").write_text(US_KEYS[0] + "\n")
    (tmp_path / "app-key").write_text(US_KEYS[1] + "\n")
    text = config_text(eu.url, us.url, interval).replace("{us_dir}", str(tmp_path))
    redactor = Redactor()
    return build_exporter(
        parse_config(text),
        "http://127.0.0.1:9",  # the default account's URL: no query uses it
        credentials(redactor, "unused-default-api-key", "unused-default-app-key"),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        environ={"DD_EU_API_KEY": EU_KEYS[0], "DD_EU_APP_KEY": EU_KEYS[1]},
        poll_policy=PollPolicy(startup_spread=0.0),
    )


async def scrape(exporter: Exporter) -> Samples:
    url = f"http://127.0.0.1:{exporter.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return parse_metrics(await response.text())


def ups(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["query"]: value
        for (name, labels), value in samples.items()
        if name == "datadog_exporter_up"
    }


async def until(condition: Callable[[], Awaitable[object]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {within}s")


async def test_each_query_uses_its_own_accounts_url_and_keys(
    simulators: tuple[Simulator, Simulator], tmp_path: Path
) -> None:
    eu, us = simulators
    exporter = build(simulators, tmp_path)
    await exporter.start()
    try:

        async def both_up() -> bool:
            return ups(await scrape(exporter)) == {"eu_pairs": 1.0, "us_clients": 1.0}

        await until(both_up)
        samples = await scrape(exporter)
    finally:
        await exporter.stop()
    # The simulators answer 403 to any other keys, so "up" proves the keys; the request logs
    # prove the URLs.
    assert [r.query["group_by"] for r in eu.request_log] == ["client_service,server_service"]
    assert [r.query["group_by"] for r in us.request_log] == ["client_service"]
    accounts = {
        (dict(labels)["query"], dict(labels)["account"])
        for name, labels in samples
        if name.startswith("datadog_cnm_")
    }
    assert accounts == {("eu_pairs", "eu"), ("us_clients", "us")}
    requests = {
        (dict(labels)["account"], dict(labels)["code"])
        for name, labels in samples
        if name == "datadog_exporter_api_requests_total"
    }
    assert requests == {("eu", "200"), ("us", "200")}


async def test_a_429_in_one_account_does_not_slow_the_other(
    simulators: tuple[Simulator, Simulator], tmp_path: Path
) -> None:
    eu, us = simulators
    # Both organisations serve the same endpoint; only eu's is rate-limited, for a minute.
    eu.set_fault("connections", Fault(kind="rate_limit", reset_seconds=60))
    exporter = build(simulators, tmp_path, interval="1s")
    await exporter.start()
    try:
        started = time.monotonic()

        async def us_polled_thrice() -> bool:
            return len(us.request_log) >= 3

        await until(us_polled_thrice, within=8)
        samples = await scrape(exporter)
    finally:
        await exporter.stop()
    # us kept its one-second schedule while eu waited out its reset after one 429.
    assert time.monotonic() - started < 6
    assert [r.status for r in eu.request_log] == [429]
    assert all(r.status == 200 for r in us.request_log)
    blocked = {
        dict(labels)["account"]: value
        for (name, labels), value in samples.items()
        if name == "datadog_exporter_rate_limited_until_timestamp_seconds"
    }
    assert blocked["eu"] > time.time() + 30
    assert blocked["us"] == 0
    assert ups(samples)["us_clients"] == 1.0


async def test_missing_keys_of_an_account_are_refused_at_start(
    simulators: tuple[Simulator, Simulator], tmp_path: Path
) -> None:
    eu, us = simulators
    text = config_text(eu.url, us.url).replace("{us_dir}", str(tmp_path / "absent"))
    redactor = Redactor()
    with pytest.raises(CredentialsError, match=r"accounts\[us\]\.api_key_file"):
        build_exporter(
            parse_config(text),
            "http://127.0.0.1:9",
            credentials(redactor),
            redactor,
            RunOptions("127.0.0.1:0", "/metrics"),
            environ={"DD_EU_API_KEY": EU_KEYS[0], "DD_EU_APP_KEY": EU_KEYS[1]},
        )
