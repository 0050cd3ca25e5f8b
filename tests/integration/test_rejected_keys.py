"""Against the simulator: a 401 or 403 is its own reason, its one log line says what to
check, and the query sends one request per poll (a key does not fix itself in seconds)."""

from __future__ import annotations

import logging

import pytest

from exporter.collectors.cases import CasesJob
from exporter.config.schema import CasesQuery
from exporter.scheduler import Backoff, PollPolicy
from simulator import Fault, Simulator

from .conftest import deadline, scheduler_against, served
from .test_faults import error_counts
from .test_scheduler import job

# Retries that would fit many times before the deadline, if a rejected key were retried.
QUICK_RETRIES = PollPolicy(retry=Backoff(base=0.01, cap=0.01))


async def test_wrong_keys_fail_as_forbidden_once_per_poll_with_what_to_check(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    simulator.set_keys("another-api-key-0000000000", "another-app-key-00000000000000")
    async with scheduler_against(simulator.url, policy=QUICK_RETRIES) as polling:
        await polling.add(job("a"))
        with caplog.at_level(logging.WARNING, logger="exporter.scheduler"):
            for _ in range(3):
                await polling.poll_once(("connections", "a"), deadline(5))
        assert error_counts(polling, "a") == {"forbidden": 3}
    assert len(simulator.requests_to("connections")) == 3
    failures = [r for r in caplog.records if r.getMessage() == "poll failed"]
    error = failures[0].__dict__["error"]
    assert "HTTP 403" in error
    assert "did not say which key" in error
    assert f"{simulator.url} (not a Datadog site" in error
    assert "network_connections_read" in error


async def test_a_401_naming_the_api_key_fails_as_unauthorized(simulator: Simulator) -> None:
    async with scheduler_against(simulator.url, policy=QUICK_RETRIES) as polling:
        await polling.add(CasesJob(CasesQuery(name="c", group_by=["status"])))
        simulator.set_fault(
            "cases",
            Fault(kind="status", status=401, error_shape="generic", detail="API key required"),
        )
        await polling.poll_once(("cases", "c"), deadline(5))
        errors = {
            dict(labels)["reason"]: value
            for (name, labels), value in served(polling).items()
            if name == "datadog_exporter_poll_errors_total" and ("query", "c") in labels
        }
        assert errors == {"unauthorized": 1}
        assert "Datadog rejected the API key (DD-API-KEY)" in (
            polling.state(("cases", "c")).last_error or ""
        )
    assert len(simulator.requests_to("cases")) == 1
