"""HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured as Go programs honour them, through a
real forward proxy on 127.0.0.1 that records what it forwards. "Datadog" is reached by a name
(datadog.test) that only the proxy, or the test's resolver, knows: loopback addresses are
never proxied (Go's rule), and no test sends a DNS query."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.app import RunOptions, build_exporter, build_jobs
from exporter.collectors.connections import ConnectionsJob
from exporter.config.errors import ConfigError
from exporter.config.schema import ConnectionsQuery, load_ca_bundle, parse_config
from exporter.datadog.client import ConnectionFailed, DatadogClient, RequestFailed
from exporter.datadog.proxies import ProxyRules
from exporter.logs import Redactor
from simulator import Simulator, SimulatorOptions

from .conftest import API_KEY, APP_KEY, credentials, deadline
from .egress_support import DATADOG_HOST, ForwardProxy, HostsResolver, PrivateCA

JOB = ConnectionsJob(ConnectionsQuery(name="pairs", group_by=["client_service"]))
LOGIN = ("exporter", "pr0xy-passw0rd-for-the-test")


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    forward = ForwardProxy(hosts={DATADOG_HOST: "127.0.0.1"})
    await forward.start()
    try:
        yield forward
    finally:
        await forward.stop()


@pytest.fixture
def private_ca(tmp_path: Path) -> PrivateCA:
    return PrivateCA(tmp_path)


@pytest.fixture
async def tls_simulator(private_ca: PrivateCA) -> AsyncIterator[Simulator]:
    """The simulator over HTTPS, with a certificate for datadog.test from the private CA."""
    sim = Simulator(SimulatorOptions(api_key=API_KEY, app_key=APP_KEY))
    await sim.start("127.0.0.1", 0, ssl_context=private_ca.server_context(DATADOG_HOST))
    try:
        yield sim
    finally:
        await sim.stop()


def by_name(simulator: Simulator) -> str:
    """The simulator's URL with datadog.test in place of 127.0.0.1."""
    return simulator.url.replace("127.0.0.1", DATADOG_HOST)


async def fetch(url: str, environ: dict[str, str], **options: object) -> list[object]:
    """One connections request through a client configured by ``environ``; the rows."""
    redactor = Redactor()
    client = DatadogClient(
        url,
        credentials=credentials(redactor),
        redactor=redactor,
        timeout=3,
        max_response_size=1 << 22,
        proxies=ProxyRules.from_environ(environ),
        resolver=HostsResolver({DATADOG_HOST: "127.0.0.1"}),
        **options,  # type: ignore[arg-type]
    )
    try:
        rows: list[object] = json.loads(await client.fetch(JOB.request(time.time())))["data"]
        return rows
    finally:
        await client.close()


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
async def test_http_proxy_carries_plain_http_requests(
    simulator: Simulator, proxy: ForwardProxy, variable: str
) -> None:
    rows = await fetch(by_name(simulator), {variable: proxy.url})
    assert rows
    (request,) = proxy.forwarded
    assert request.method == "GET"
    assert request.target.startswith(f"{by_name(simulator)}/api/v2/network/connections/aggregate?")
    assert len(simulator.requests_to("connections")) == 1


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy"])
async def test_https_proxy_tunnels_with_connect_and_sees_no_key(
    tls_simulator: Simulator, proxy: ForwardProxy, private_ca: PrivateCA, variable: str
) -> None:
    rows = await fetch(
        by_name(tls_simulator),
        {variable: proxy.url},
        ssl_context=load_ca_bundle(private_ca.ca_file),
    )
    assert rows
    (request,) = proxy.forwarded
    port = tls_simulator.url.rsplit(":", 1)[1]
    assert (request.method, request.target) == ("CONNECT", f"{DATADOG_HOST}:{port}")
    assert proxy.tunnelled  # the request really went through the tunnel
    assert API_KEY.encode() not in proxy.seen() and APP_KEY.encode() not in proxy.seen()


async def test_upper_case_variable_wins_over_lower_case(
    simulator: Simulator, proxy: ForwardProxy
) -> None:
    environ = {"HTTP_PROXY": proxy.url, "http_proxy": "http://127.0.0.1:9"}  # discard port
    assert await fetch(by_name(simulator), environ)
    assert len(proxy.forwarded) == 1


async def test_each_scheme_uses_only_its_own_variable(
    simulator: Simulator, tls_simulator: Simulator, proxy: ForwardProxy, private_ca: PrivateCA
) -> None:
    # HTTPS_PROXY does not apply to http:// URLs, nor HTTP_PROXY to https:// ones: both direct.
    assert await fetch(by_name(simulator), {"HTTPS_PROXY": proxy.url})
    context = load_ca_bundle(private_ca.ca_file)
    assert await fetch(by_name(tls_simulator), {"HTTP_PROXY": proxy.url}, ssl_context=context)
    assert proxy.forwarded == []


@pytest.mark.parametrize(
    "no_proxy",
    [
        DATADOG_HOST,
        DATADOG_HOST.upper(),
        ".test",
        "*.test",
        "test",
        "*",
        "other.example, datadog.test",
        "datadog.test:{port}",
    ],
)
@pytest.mark.parametrize("variable", ["NO_PROXY", "no_proxy"])
async def test_no_proxy_sends_matching_hosts_direct(
    simulator: Simulator, proxy: ForwardProxy, no_proxy: str, variable: str
) -> None:
    port = simulator.url.rsplit(":", 1)[1]
    environ = {"HTTP_PROXY": proxy.url, variable: no_proxy.format(port=port)}
    assert await fetch(by_name(simulator), environ)
    assert proxy.forwarded == []
    assert len(simulator.requests_to("connections")) == 1


@pytest.mark.parametrize(
    "no_proxy", [".datadog.test", "*.datadog.test", "datadog.test:1", "other.example", "10.0.0.0/8"]
)
async def test_no_proxy_entries_that_do_not_match_leave_the_proxy_in_use(
    simulator: Simulator, proxy: ForwardProxy, no_proxy: str
) -> None:
    # A leading dot (or *.) means subdomains only; a port must match; CIDRs match addresses.
    assert await fetch(by_name(simulator), {"HTTP_PROXY": proxy.url, "NO_PROXY": no_proxy})
    assert len(proxy.forwarded) == 1


async def test_loopback_is_never_proxied(simulator: Simulator, proxy: ForwardProxy) -> None:
    # As in Go: a simulator or sidecar on 127.0.0.1 is reached directly, whatever HTTP_PROXY says.
    assert await fetch(simulator.url, {"HTTP_PROXY": proxy.url})
    assert proxy.forwarded == []


async def test_proxy_login_is_sent_to_the_proxy_and_never_shown(
    tls_simulator: Simulator,
    private_ca: PrivateCA,
    debug_log: tuple[io.StringIO, Redactor],
) -> None:
    stream, redactor = debug_log
    password = LOGIN[1]
    proxy = ForwardProxy(hosts={DATADOG_HOST: "127.0.0.1"}, login=LOGIN)
    await proxy.start()
    port = proxy.port
    seen: list[str] = []
    try:
        for login in (LOGIN, (LOGIN[0], "wrong-" + password)):
            environ = {"HTTPS_PROXY": f"http://{login[0]}:{login[1]}@127.0.0.1:{port}"}
            client = DatadogClient(
                by_name(tls_simulator),
                credentials=credentials(redactor),
                redactor=redactor,
                timeout=3,
                max_response_size=1 << 22,
                proxies=ProxyRules.from_environ(environ),
                ssl_context=load_ca_bundle(private_ca.ca_file),
            )
            seen += [repr(client.proxy), repr(client.proxies)]
            try:
                await client.fetch(JOB.request(time.time()))
            except RequestFailed as exc:
                seen += [str(exc), repr(exc)]
                failure = exc
            finally:
                await client.close()
    finally:
        await proxy.stop()

    assert [r.method for r in proxy.forwarded] == ["CONNECT", "CONNECT"]
    assert len(tls_simulator.requests_to("connections")) == 1  # the right login got through
    assert isinstance(failure, ConnectionFailed) and failure.retryable is False
    assert str(failure) == (
        f"connections: proxy http://127.0.0.1:{port} (from HTTPS_PROXY) answered 407 "
        "Proxy Authentication Required to CONNECT: check the login in the proxy URL"
    )
    output = stream.getvalue()
    assert f"proxy=http://127.0.0.1:{port}" in output  # the proxy in use was logged
    everything = output + "\n".join(seen)
    assert password not in everything
    assert "[REDACTED]" not in everything  # never even produced, not merely scrubbed


async def test_the_exporter_reads_proxies_from_its_environment(
    simulator: Simulator, proxy: ForwardProxy
) -> None:
    redactor = Redactor()
    exporter = build_exporter(
        parse_config("connections: [{name: a, group_by: [client_service], interval: 1h}]"),
        by_name(simulator),
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        environ={"HTTP_PROXY": proxy.url},
    )
    await exporter.scheduler.add(*build_jobs(exporter.config))  # polled by hand, not started
    try:
        await exporter.scheduler.poll_once(("connections", "a"), deadline(3))
    finally:
        await exporter.stop()
    assert exporter.scheduler.state(("connections", "a")).up is True
    assert len(proxy.forwarded) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("socks5://user:s3cret-proxy-pass@proxy:1080", "socks5:// proxies are not supported"),
        ("http://user:s3cret-proxy-pass@proxy:99999", "not a valid proxy URL"),
    ],
)
def test_an_unusable_proxy_variable_stops_the_start_naming_it(value: str, message: str) -> None:
    redactor = Redactor()
    with pytest.raises(ConfigError) as caught:
        build_exporter(
            parse_config("connections: [{name: q}]"),
            "https://api.datadoghq.com",
            credentials(redactor),
            redactor,
            RunOptions("127.0.0.1:0", "/metrics"),
            environ={"HTTPS_PROXY": value},
        )
    assert caught.value.problems == [("HTTPS_PROXY", caught.value.problems[0][1])]
    assert message in str(caught.value)
    assert "s3cret-proxy-pass" not in str(caught.value)


async def test_proxy_login_works_for_plain_http_requests_too(simulator: Simulator) -> None:
    proxy = ForwardProxy(hosts={DATADOG_HOST: "127.0.0.1"}, login=LOGIN)
    await proxy.start()
    try:
        good = {"HTTP_PROXY": f"http://{LOGIN[0]}:{LOGIN[1]}@127.0.0.1:{proxy.port}"}
        assert await fetch(by_name(simulator), good)
        bad = {"HTTP_PROXY": f"http://{LOGIN[0]}:wrong-{LOGIN[1]}@127.0.0.1:{proxy.port}"}
        with pytest.raises(RequestFailed) as caught:
            await fetch(by_name(simulator), bad)
        port = proxy.port
    finally:
        await proxy.stop()
    assert len(proxy.forwarded) == 2 and len(simulator.requests_to("connections")) == 1
    assert str(caught.value) == (
        f"connections: HTTP 407: empty body (from http://127.0.0.1:{port}; "
        "check the login in HTTP_PROXY)"
    )
    assert LOGIN[1] not in repr(caught.value)
