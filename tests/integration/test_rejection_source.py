"""A refused key's line names the setting that chose the base URL, for every account."""

from __future__ import annotations

import pytest

from exporter.collectors.cases import CasesJob
from exporter.config.accounts import BaseUrl, resolve_accounts
from exporter.config.schema import parse_config
from exporter.datadog.client import Forbidden
from exporter.datadog.pool import ClientPool
from exporter.datadog.proxies import ProxyRules
from exporter.logs import Redactor
from simulator import Simulator, SimulatorOptions

from .conftest import API_KEY, APP_KEY, credentials


@pytest.mark.parametrize(
    "simulator_options",
    [SimulatorOptions(api_key=API_KEY, app_key=APP_KEY, denied_endpoints=("cases",))],
)
async def test_a_403_names_where_the_base_url_came_from(simulator: Simulator) -> None:
    config = parse_config("cases: [{name: c, group_by: [status]}]")
    redactor = Redactor()
    pool = ClientPool(redactor, ProxyRules.from_environ({}), lambda *_: None)
    accounts = resolve_accounts(config, BaseUrl(simulator.url, "DD_API_URL"))
    pool.apply(accounts, {"default": credentials(redactor)})
    job = CasesJob(config.cases[0], "default", False)
    try:
        with pytest.raises(Forbidden) as caught:
            await pool.clients["default"].fetch(job.request(0.0))
    finally:
        await pool.close()
    assert f"organisation at {simulator.url} (" in str(caught.value)
    assert "set by DD_API_URL" in str(caught.value)
    assert "cases_read" in str(caught.value)
