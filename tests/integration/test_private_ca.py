"""A private CA (a TLS-inspecting egress proxy's) can be trusted with ``datadog.ca_file``,
against the simulator served over HTTPS on 127.0.0.1; hostnames are still verified."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.app import Exporter, RunOptions, build_exporter, build_jobs
from exporter.config.schema import Config, parse_config
from exporter.logs import Redactor
from simulator import Simulator, SimulatorOptions

from .conftest import API_KEY, APP_KEY, credentials, deadline
from .egress_support import PrivateCA
from .test_faults import error_counts, poll_failures

QUERY = "connections: [{name: a, group_by: [client_service], interval: 1h}]\n"
KEY = ("connections", "a")


@pytest.fixture
def private_ca(tmp_path: Path) -> PrivateCA:
    return PrivateCA(tmp_path)


async def https_simulator(private_ca: PrivateCA, *names: str) -> Simulator:
    sim = Simulator(SimulatorOptions(api_key=API_KEY, app_key=APP_KEY))
    await sim.start("127.0.0.1", 0, ssl_context=private_ca.server_context(*names))
    return sim


@pytest.fixture
async def trusted_name(private_ca: PrivateCA) -> AsyncIterator[Simulator]:
    """HTTPS with a certificate for 127.0.0.1, the address the exporter is pointed at."""
    sim = await https_simulator(private_ca, "127.0.0.1")
    try:
        yield sim
    finally:
        await sim.stop()


async def exporter_for(config: Config, url: str) -> Exporter:
    redactor = Redactor()
    exporter = build_exporter(
        config,
        url,
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        environ={},
    )
    await exporter.scheduler.add(*build_jobs(config))  # polled by hand, not started
    return exporter


def with_ca(ca_file: Path) -> Config:
    return parse_config(f"datadog: {{ca_file: '{ca_file}'}}\n" + QUERY)


async def test_ca_file_makes_a_privately_signed_api_trusted(
    trusted_name: Simulator, private_ca: PrivateCA
) -> None:
    exporter = await exporter_for(with_ca(private_ca.ca_file), trusted_name.url)
    try:
        await exporter.scheduler.poll_once(KEY, deadline(3))
    finally:
        await exporter.stop()
    assert trusted_name.url.startswith("https://")
    assert exporter.scheduler.state(KEY).up is True
    assert len(trusted_name.requests_to("connections")) == 1


async def test_without_ca_file_the_private_ca_is_refused_in_one_clear_line(
    trusted_name: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = await exporter_for(parse_config(QUERY), trusted_name.url)
    with caplog.at_level(logging.DEBUG, logger="exporter"):
        try:
            await exporter.scheduler.poll_once(KEY, deadline(3))
        finally:
            await exporter.stop()
    assert error_counts(exporter.scheduler, "a") == {"tls_error": 1}
    (failure,) = poll_failures(caplog, "a")
    port = trusted_name.url.rsplit(":", 1)[1]
    assert str(getattr(failure, "error", "")) == (
        f"connections: TLS handshake failed: certificate of 127.0.0.1:{port} not accepted: "
        "unable to get local issuer certificate; if a TLS-inspecting proxy re-signs "
        "traffic, trust its CA with datadog.ca_file"
    )
    assert "retrying" not in caplog.text  # a certificate does not change in seconds
    assert trusted_name.requests_to("connections") == []


async def test_the_hostname_is_still_verified_with_a_ca_file(
    private_ca: PrivateCA, caplog: pytest.LogCaptureFixture
) -> None:
    # Signed by the trusted CA, but for another name than the one the exporter asked for.
    other = await https_simulator(private_ca, "not-datadog.example")
    port = other.url.rsplit(":", 1)[1]
    exporter = await exporter_for(with_ca(private_ca.ca_file), other.url)
    with caplog.at_level(logging.WARNING, logger="exporter"):
        try:
            await exporter.scheduler.poll_once(KEY, deadline(3))
        finally:
            await exporter.stop()
            await other.stop()
    assert exporter.scheduler.state(KEY).up is False
    (failure,) = poll_failures(caplog, "a")
    line = str(getattr(failure, "error", ""))
    assert line == (
        f"connections: TLS handshake failed: certificate of 127.0.0.1:{port} not accepted: "
        "IP address mismatch, certificate is not valid for '127.0.0.1'."
    )
    assert other.requests_to("connections") == []


async def test_a_reload_that_adds_ca_file_makes_the_next_poll_trusted(
    trusted_name: Simulator, private_ca: PrivateCA
) -> None:
    redactor = Redactor()
    exporter = build_exporter(
        parse_config(QUERY),
        trusted_name.url,
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        config_source=lambda: (with_ca(private_ca.ca_file), trusted_name.url),
        environ={},
    )
    await exporter.scheduler.add(*build_jobs(exporter.config))
    try:
        await exporter.scheduler.poll_once(KEY, deadline(3))
        assert exporter.scheduler.state(KEY).up is False
        ok, message = await exporter.reload()
        assert ok, message
        await exporter.scheduler.poll_once(KEY, deadline(3))
    finally:
        await exporter.stop()
    assert exporter.scheduler.state(KEY).up is True
