"""Fixtures: a simulator running on 127.0.0.1 and an aiohttp client session for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from simulator import Simulator, SimulatorOptions

from .support import AUTH


@pytest.fixture
def options() -> SimulatorOptions:
    return SimulatorOptions(seed=42, connections_universe=300)


@pytest.fixture
async def sim(options: SimulatorOptions) -> AsyncIterator[Simulator]:
    simulator = Simulator(options)
    await simulator.start(host="127.0.0.1", port=0)
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sim.url, headers=AUTH) as session:
        yield session
