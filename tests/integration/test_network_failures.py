"""Network failures say which one: an unresolvable host, a refused port and a failed TLS
handshake each have their reason on datadog_exporter_poll_errors_total (and the same word as
the ``code`` of datadog_exporter_api_requests_total) and their plain words in the one
"poll failed" line, so DNS, a firewall and a certificate are told apart at a glance.

Against real sockets on 127.0.0.1. Name resolution goes through the client's resolver seam:
this machine's resolver (nsswitch ``files dns``) would send a query for an unknown name to
the DNS server in /etc/resolv.conf, traffic to another host a test must not make; the seam
fails the lookup the way glibc's getaddrinfo does (EAI_NONAME), before any packet is sent.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from simulator import Simulator, SimulatorOptions

from .conftest import API_KEY, APP_KEY, deadline, scheduler_against, served
from .egress_support import PrivateCA
from .test_faults import error_counts, poll_failures
from .test_scheduler import job

KEY = ("connections", "a")


class NoSuchName(AbstractResolver):
    """Every name is unknown, as getaddrinfo says of a name no DNS server has (NXDOMAIN)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        pass


async def failed_poll(
    url: str, caplog: pytest.LogCaptureFixture, resolver: AbstractResolver | None = None
) -> tuple[dict[str, float], str]:
    """One poll of one query against ``url``: its poll_errors_total by reason (which the
    requests counter's ``code`` repeats), and the error of its one "poll failed" line."""
    async with scheduler_against(url, resolver=resolver) as scheduler:
        await scheduler.add(job("a"))
        with caplog.at_level(logging.WARNING, logger="exporter"):
            await scheduler.poll_once(KEY, deadline(1.0))
        assert scheduler.state(KEY).up is False
        counts = error_counts(scheduler, "a")
        codes = {
            dict(labels)["code"]: value
            for (name, labels), value in served(scheduler).items()
            if name == "datadog_exporter_api_requests_total"
        }
    assert set(codes) == set(counts)  # the same word (a poll may have sent a retry)
    (failure,) = poll_failures(caplog, "a")
    assert failure.getMessage() == "poll failed"
    return counts, str(getattr(failure, "error", ""))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unresolvable_host_is_a_dns_error(caplog: pytest.LogCaptureFixture) -> None:
    resolver = NoSuchName()
    counts, error = await failed_poll("https://api.nonexistent.invalid", caplog, resolver)
    assert counts == {"dns_error": 1}
    assert error == (
        "connections: could not resolve host api.nonexistent.invalid: Name or service not known"
    )
    assert set(resolver.asked) == {"api.nonexistent.invalid"}


async def test_a_closed_port_is_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    port = closed_port()
    counts, error = await failed_poll(f"http://127.0.0.1:{port}", caplog)
    assert counts == {"connection_refused": 1}
    assert error == f"connections: connection refused by 127.0.0.1:{port}"


@pytest.fixture
async def untrusted_tls(private_ca: PrivateCA) -> AsyncIterator[Simulator]:
    """HTTPS on 127.0.0.1 with a certificate from a CA the exporter does not trust."""
    sim = Simulator(SimulatorOptions(api_key=API_KEY, app_key=APP_KEY))
    await sim.start("127.0.0.1", 0, ssl_context=private_ca.server_context("127.0.0.1"))
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def private_ca(tmp_path: Path) -> PrivateCA:
    return PrivateCA(tmp_path)


async def test_an_untrusted_certificate_is_a_tls_error(
    untrusted_tls: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    counts, error = await failed_poll(untrusted_tls.url, caplog)
    port = untrusted_tls.url.rsplit(":", 1)[1]
    assert counts == {"tls_error": 1}
    assert error.startswith(
        f"connections: TLS handshake failed: certificate of 127.0.0.1:{port} not accepted: "
        "unable to get local issuer certificate"
    )
    assert untrusted_tls.requests_to("connections") == []


async def test_https_to_a_plain_http_port_is_a_tls_error(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    https = simulator.url.replace("http://", "https://")
    counts, error = await failed_poll(https, caplog)
    assert counts == {"tls_error": 1}
    assert error.startswith("connections: TLS handshake failed: "), error
    assert "wrong version number" in error  # what OpenSSL says of an answer that is not TLS
