from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from exporter.credentials import Credentials, KeySource, Secret
from exporter.datadog import DatadogClient
from exporter.logs import Redactor
from exporter.simulator import Simulator, SimulatorOptions

API_KEY = "integration-api-key-1234567890abcdef"
APP_KEY = "integration-app-key-abcdef1234567890abcdef"


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(SimulatorOptions(api_key=API_KEY, app_key=APP_KEY))
    await sim.start(host="127.0.0.1", port=0)
    try:
        yield sim
    finally:
        await sim.stop()


def credentials(redactor: Redactor, api_key: str = API_KEY, app_key: str = APP_KEY) -> Credentials:
    return Credentials(
        KeySource("DD_API_KEY", Secret(api_key)), KeySource("DD_APP_KEY", Secret(app_key)), redactor
    )


@pytest.fixture
async def client(simulator: Simulator) -> AsyncIterator[DatadogClient]:
    redactor = Redactor()
    dd = DatadogClient(
        simulator.url,
        credentials=credentials(redactor),
        redactor=redactor,
        timeout=2.0,
        max_response_size=8 * 1024 * 1024,
    )
    try:
        yield dd
    finally:
        await dd.close()
