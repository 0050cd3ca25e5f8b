"""The exporter is built from values: its constructor reads no file and no variable, and
start-up and reloads read them through one PoolBuilder (the environment snapshot included)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from exporter.app import Exporter, RunOptions, build_exporter
from exporter.config.accounts import resolve_accounts
from exporter.config.schema import Config, parse_config
from exporter.datadog.credentials import Credentials, CredentialsError, KeySource
from exporter.datadog.pool import ClientPool
from exporter.datadog.proxies import ProxyRules
from exporter.logs import Redactor
from exporter.selfmetrics import SelfMetrics
from exporter.sharding import Shard
from simulator import Simulator
from tests.helpers import parse_metrics

from .conftest import API_KEY, APP_KEY, credentials

TWO_QUERIES = "connections: [{name: a, interval: 1h}, {name: b, interval: 1h}]\n"


def from_values(
    config: Config, url: str, keys: Credentials, redactor: Redactor, options: RunOptions
) -> Exporter:
    """An Exporter from values only: the pool gets its proxies, accounts and keys handed in."""
    metrics = SelfMetrics()
    pool = ClientPool(redactor, ProxyRules.from_environ({}), metrics.count_response)
    pool.apply(resolve_accounts(config, url), {"default": keys})
    return Exporter(config, pool, metrics, redactor, options)


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def test_the_constructor_reads_no_key_file(tmp_path: Path) -> None:
    """A key file that does not exist stops build_exporter (it reads and checks the keys),
    never the constructor, which only holds what it is given."""
    redactor = Redactor()
    absent = Credentials(
        KeySource("DD_API_KEY", path=tmp_path / "api-key"),
        KeySource("DD_APP_KEY", value=SecretStr(APP_KEY)),
        redactor,
    )
    config = parse_config(TWO_QUERIES)
    options = RunOptions("127.0.0.1:0", "/metrics")
    exporter = from_values(config, "http://127.0.0.1:9", absent, redactor, options)
    assert exporter.pool.clients["default"].credentials is absent
    with pytest.raises(CredentialsError, match="cannot read DD_API_KEY_FILE"):
        build_exporter(config, "http://127.0.0.1:9", absent, redactor, options, environ={})


async def test_an_exporter_from_values_serves_readiness_and_its_shard(
    simulator: Simulator,
) -> None:
    """/-/ready follows the exporter's readiness event; the shard gauges are set at start."""
    redactor = Redactor()
    config = parse_config(TWO_QUERIES)
    options = RunOptions("127.0.0.1:0", "/metrics", shard=Shard(0, 2))
    exporter = from_values(config, simulator.url, credentials(redactor), redactor, options)
    assert not exporter.ready.is_set()
    await exporter.start()
    try:
        base = f"http://127.0.0.1:{exporter.port}"
        assert exporter.ready.is_set()
        assert await get(base + "/-/ready") == (200, "Ready.\n")
        exporter.ready.clear()  # as stop() does first
        assert await get(base + "/-/ready") == (503, "Not ready: still starting.\n")
        exporter.ready.set()
        _, text = await get(base + "/metrics")
        samples = parse_metrics(text)
        owned = len(exporter.scheduler.query_states())
        assert samples[("datadog_exporter_configured_queries", frozenset())] == 2
        assert samples[("datadog_exporter_owned_queries", frozenset())] == owned
        info = frozenset({("index", "0"), ("count", "2")})
        assert samples[("datadog_exporter_shard_info", info)] == 1
    finally:
        await exporter.stop()
    assert not exporter.ready.is_set()


async def test_a_reload_reads_keys_from_the_start_up_snapshot(simulator: Simulator) -> None:
    """A reload adding an account finds its key variables in the environ given at start-up,
    through the same builder, and none of the process environment."""
    redactor = Redactor()
    environ = {"DD_EU_API_KEY": API_KEY, "DD_EU_APP_KEY": APP_KEY}
    added = parse_config(
        f"accounts: [{{name: eu, api_url: '{simulator.url}', api_key_env: DD_EU_API_KEY, "
        "app_key_env: DD_EU_APP_KEY}]\nconnections: [{name: q, account: eu, interval: 1h}]\n"
    )
    missing = parse_config(
        f"accounts: [{{name: us, api_url: '{simulator.url}', api_key_env: DD_US_API_KEY, "
        "app_key_env: DD_US_APP_KEY}]\nconnections: [{name: q, account: us, interval: 1h}]\n"
    )
    configs = iter([added, missing])
    exporter = build_exporter(
        parse_config(TWO_QUERIES),
        simulator.url,
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        environ=environ,
        config_source=lambda: (next(configs), simulator.url),
    )
    await exporter.start()
    try:
        ok, message = await exporter.reload()
        assert ok, message
        assert sorted(exporter.pool.clients) == ["eu"]
        ok, message = await exporter.reload()
        assert not ok
        assert "DD_US_API_KEY is not set" in message
        assert sorted(exporter.pool.clients) == ["eu"]  # the running configuration stays
    finally:
        await exporter.stop()
