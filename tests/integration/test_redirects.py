"""Redirects are never followed: the keys go to the configured host and nowhere else. A 3xx is
a failed poll whose log line names where it pointed (host and port only)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from exporter.scheduler import Scheduler
from simulator import Fault, Simulator

from .conftest import API_KEY, APP_KEY, deadline
from .egress_support import Recorder
from .test_faults import error_counts, poll_failures
from .test_scheduler import job


@pytest.fixture
async def elsewhere() -> AsyncIterator[Recorder]:
    """The host a hostile answer redirects to; it records whatever reaches it."""
    recorder = Recorder()
    await recorder.start()
    try:
        yield recorder
    finally:
        await recorder.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_fails_the_poll_and_nothing_reaches_its_target(
    polling: Scheduler,
    simulator: Simulator,
    elsewhere: Recorder,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    # The query string of the target carries a key, as a hostile Location might.
    location = f"{elsewhere.url}/api/v2/network/connections/aggregate?api_key={API_KEY}"
    simulator.set_fault("connections", Fault(kind="redirect", status=status, location=location))
    await polling.add(job("a"))
    with caplog.at_level(logging.DEBUG, logger="exporter"):
        await polling.poll_once(("connections", "a"), deadline(2))

    assert elsewhere.requests == []
    assert len(simulator.requests_to("connections")) == 1  # asked once, not retried
    state = polling.state(("connections", "a"))
    assert state.up is False
    assert error_counts(polling, "a") == {"http_error": 1}
    (failure,) = poll_failures(caplog, "a")
    line = str(getattr(failure, "error", ""))
    assert f"HTTP {status} redirect to 127.0.0.1:{elsewhere.port} refused" in line
    everything = caplog.text + line + str(state.last_error)
    assert "api_key" not in everything and "/api/v2/network" not in line
    assert API_KEY not in everything and APP_KEY not in everything


async def test_a_relative_redirect_names_the_api_host_itself(
    polling: Scheduler, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    simulator.set_fault("connections", Fault(kind="redirect", status=307, location="/login"))
    await polling.add(job("a"))
    with caplog.at_level(logging.WARNING, logger="exporter"):
        await polling.poll_once(("connections", "a"), deadline(2))
    (failure,) = poll_failures(caplog, "a")
    host = simulator.url.removeprefix("http://")
    assert f"redirect to {host} refused" in str(getattr(failure, "error", ""))
    assert len(simulator.requests_to("connections")) == 1


async def test_a_redirect_host_that_carries_a_key_is_redacted(
    polling: Scheduler, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    location = f"https://{API_KEY}.elsewhere.example/"
    simulator.set_fault("connections", Fault(kind="redirect", location=location))
    await polling.add(job("a"))
    with caplog.at_level(logging.WARNING, logger="exporter"):
        await polling.poll_once(("connections", "a"), deadline(2))
    (failure,) = poll_failures(caplog, "a")
    line = str(getattr(failure, "error", ""))
    assert "redirect to [REDACTED].elsewhere.example refused" in line
    assert API_KEY not in caplog.text + line
