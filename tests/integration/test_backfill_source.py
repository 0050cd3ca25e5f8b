"""The backfill counts as "waits for the rate limit" only the calls that did wait."""

from __future__ import annotations

import time

import pytest

from exporter.backfill.source import WindowSource, select_queries
from exporter.config.schema import parse_config
from exporter.logs import Redactor
from simulator import Simulator, SimulatorOptions

KEYS = {"DD_API_KEY": "sim-api-key", "DD_APP_KEY": "sim-app-key"}
CONFIG = parse_config("connections: [{name: total, interval: 5m, window: 5m}]")


async def fetch_windows(options: SimulatorOptions, windows: int) -> WindowSource:
    simulator = Simulator(options)
    await simulator.start(host="127.0.0.1", port=0)
    source = WindowSource(CONFIG, Redactor(), environ={**KEYS, "DD_API_URL": simulator.url})
    (query,) = select_queries(CONFIG, []).queries
    end = int(time.time()) // 300 * 300 - 4 * 3600
    try:
        for index in range(windows):
            await source.fetch(query, end - index * 300)
    finally:
        await source.close()
        await simulator.stop()
    return source


async def test_calls_that_go_at_once_are_not_counted_as_waits() -> None:
    source = await fetch_windows(SimulatorOptions(rate_limit=1000), 20)
    assert source.stats.calls == 20
    assert (source.stats.pauses, source.stats.paused_seconds) == (0, 0.0)


@pytest.mark.timeout(60)
async def test_calls_paced_by_a_low_budget_are_counted() -> None:
    # 6 calls per 2s: once the headers show the budget running low, calls are spread out.
    options = SimulatorOptions(rate_limit=6, rate_limit_period=2)
    source = await fetch_windows(options, 10)
    assert source.stats.calls == 10 and source.stats.rate_limited == 0
    assert 1 <= source.stats.pauses < 10
    assert source.stats.paused_seconds > 0
