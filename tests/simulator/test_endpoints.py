"""The simulator's one list of endpoints: every registered collector's request is served under
its endpoint's name, and faults, budgets and no-CNM answers follow the list."""

from __future__ import annotations

import json

import aiohttp
import pytest

from exporter.app import build_jobs
from exporter.collectors.protocol import DecodeError
from exporter.collectors.registry import CNM_ENDPOINTS, REGISTRY
from exporter.config.schema import parse_config
from simulator import Fault, Simulator, SimulatorOptions
from simulator.endpoints import ENDPOINTS
from simulator.options import OptionError
from tests.helpers import EXAMPLE_QUERIES, render_body

from .support import AUTH

JOBS = build_jobs(parse_config(json.dumps({s: [q] for s, q in EXAMPLE_QUERIES.items()})))


def test_the_simulator_serves_exactly_the_registered_endpoints() -> None:
    assert [endpoint.name for endpoint in ENDPOINTS] == [entry.endpoint for entry in REGISTRY]
    assert {endpoint.name for endpoint in ENDPOINTS if endpoint.cnm} == CNM_ENDPOINTS


async def fetch(
    session: aiohttp.ClientSession, job_index: int
) -> tuple[int, dict[str, str], bytes]:
    request = JOBS[job_index].request(0)
    async with session.request(
        request.method, request.path, params=dict(request.params), json=request.json_body
    ) as response:
        return response.status, dict(response.headers), await response.read()


@pytest.mark.parametrize("index", range(len(JOBS)), ids=[job.collector for job in JOBS])
async def test_every_collector_is_answered_logged_and_budgeted_under_its_endpoint(
    sim: Simulator, http: aiohttp.ClientSession, index: int
) -> None:
    job = JOBS[index]
    status, headers, body = await fetch(http, index)
    assert status == 200
    assert render_body(job, body).series > 0
    assert [record.endpoint for record in sim.request_log] == [job.endpoint]
    assert headers["X-RateLimit-Name"] not in ("", job.endpoint)
    sim.set_fault(job.endpoint, Fault(kind="wrong_shape", count=1))
    status, _, body = await fetch(http, index)
    assert status == 200
    with pytest.raises(DecodeError):
        render_body(job, body)
    sim.set_fault(job.endpoint, Fault(kind="huge", size_bytes=4096, count=1))
    status, _, body = await fetch(http, index)
    assert (status, len(body)) == (200, 4096)
    assert render_body(job, body).series > 0


async def test_without_cnm_only_the_cnm_endpoints_answer_a_bare_400() -> None:
    simulator = Simulator(SimulatorOptions(cnm_enabled=False))
    await simulator.start()
    try:
        async with aiohttp.ClientSession(base_url=simulator.url, headers=AUTH) as session:
            for index, job in enumerate(JOBS):
                status, _, body = await fetch(session, index)
                if job.endpoint in CNM_ENDPOINTS:
                    assert (status, json.loads(body)) == (400, {"errors": ["Bad Request"]})
                else:
                    assert status == 200
    finally:
        await simulator.stop()


def test_a_fault_for_an_endpoint_not_in_the_list_is_refused() -> None:
    with pytest.raises(OptionError, match=r"unknown endpoint 'metrics'.*connections"):
        Simulator().set_fault("metrics", Fault(kind="status"))
