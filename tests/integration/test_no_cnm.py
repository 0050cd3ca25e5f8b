"""An organisation without Cloud Network Monitoring gets a bare 400 from the CNM endpoints;
the log line says what that most likely means instead of leaving the user to guess."""

from __future__ import annotations

import logging
import time

import pytest

from exporter.collectors.cases import CasesJob
from exporter.collectors.connections import ConnectionsJob
from exporter.collectors.dns import DnsJob
from exporter.collectors.protocol import QueryJob
from exporter.config.schema import CasesQuery, ConnectionsQuery, DnsQuery
from exporter.datadog.client import DatadogClient, HttpError
from exporter.scheduler import Scheduler
from simulator import Fault, Simulator, SimulatorOptions
from simulator.options import ErrorShape

from .conftest import API_KEY, APP_KEY, deadline
from .test_faults import error_counts, poll_failures

HINT = "Bad Request with no details; is Cloud Network Monitoring enabled for this organisation?"
WITHOUT_CNM = SimulatorOptions(api_key=API_KEY, app_key=APP_KEY, cnm_enabled=False)
CONNECTIONS = ConnectionsJob(ConnectionsQuery(name="pairs", group_by=["client_service"]))
DNS = DnsJob(DnsQuery(name="names"))
CASES = CasesJob(CasesQuery(name="by_status", group_by=["status"]))


@pytest.mark.parametrize("simulator_options", [WITHOUT_CNM])
@pytest.mark.parametrize("job", [CONNECTIONS, DNS], ids=["connections", "dns"])
async def test_a_bare_400_from_a_cnm_endpoint_asks_whether_cnm_is_enabled(
    client: DatadogClient, job: QueryJob
) -> None:
    with pytest.raises(HttpError) as caught:
        await client.fetch(job.request(time.time()))
    assert str(caught.value) == f"{job.endpoint}: HTTP 400: {HINT}"


@pytest.mark.parametrize("simulator_options", [WITHOUT_CNM])
async def test_the_other_endpoints_still_work_without_cnm(client: DatadogClient) -> None:
    assert await client.fetch(CASES.request(time.time()))


@pytest.mark.parametrize("shape", ["strings", "jsonapi_no_detail", "code"])
async def test_every_shape_of_a_bare_400_gets_the_hint(
    client: DatadogClient, simulator: Simulator, shape: ErrorShape
) -> None:
    simulator.set_fault(
        "connections",
        Fault(kind="status", status=400, error_shape=shape, count=1),
    )
    with pytest.raises(HttpError) as caught:
        await client.fetch(CONNECTIONS.request(time.time()))
    assert str(caught.value) == f"connections: HTTP 400: {HINT}"


async def test_a_400_with_details_is_reported_as_it_is(
    client: DatadogClient, simulator: Simulator
) -> None:
    simulator.set_fault(
        "connections", Fault(kind="status", status=400, detail="limit must be at most 7500")
    )
    with pytest.raises(HttpError) as caught:
        await client.fetch(CONNECTIONS.request(time.time()))
    assert str(caught.value) == "connections: HTTP 400: Bad Request: limit must be at most 7500"


async def test_a_bare_400_from_cases_gets_no_cnm_hint(
    client: DatadogClient, simulator: Simulator
) -> None:
    simulator.set_fault("cases", Fault(kind="status", status=400, error_shape="strings"))
    with pytest.raises(HttpError) as caught:
        await client.fetch(CASES.request(time.time()))
    assert "Network Monitoring" not in str(caught.value)


@pytest.mark.parametrize("simulator_options", [WITHOUT_CNM])
async def test_the_poll_fails_with_http_error_and_logs_the_hint(
    polling: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    await polling.add(CONNECTIONS, DNS)
    with caplog.at_level(logging.WARNING, logger="exporter"):
        await polling.poll_once(("connections", "pairs"), deadline(2))
        await polling.poll_once(("dns", "names"), deadline(2))
    for collector, name in (("connections", "pairs"), ("dns", "names")):
        assert polling.state((collector, name)).up is False
        assert error_counts(polling, name) == {"http_error": 1}
        (failure,) = poll_failures(caplog, name)
        assert getattr(failure, "error", "") == f"{collector}: HTTP 400: {HINT}"
