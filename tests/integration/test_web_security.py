"""/metrics behind TLS, mTLS and basic auth, with real certificates and real bcrypt hashes."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import trustme

from exporter.app import Exporter, RunOptions, build_exporter
from exporter.config.schema import parse_config
from exporter.config.web import WebSecurity, load_web_config
from exporter.logs import Redactor

from .conftest import credentials

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()

Start = Callable[[str], Awaitable[str]]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, trustme.CA, trustme.CA]:
    directory = tmp_path_factory.mktemp("pki")
    server_ca, client_ca = trustme.CA(), trustme.CA()
    server = server_ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    client_ca.cert_pem.write_to_path(str(directory / "clients-ca.crt"))
    return directory, server_ca, client_ca


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start an exporter with the given web config text; return its base URL."""
    running: list[Exporter] = []

    async def starter(text: str, directory: Path = tmp_path) -> str:
        path = directory / f"web-{len(running)}.yml"
        path.write_text(text)
        security: WebSecurity = load_web_config(path)
        redactor = Redactor()
        exporter = build_exporter(
            parse_config("connections: [{name: q, interval: 1h}]"),
            "http://127.0.0.1:9",
            credentials(redactor),
            redactor,
            RunOptions("127.0.0.1:0", "/metrics", security),
            environ={},
        )
        await exporter.start()
        running.append(exporter)
        return f"{security.scheme}://127.0.0.1:{exporter.port}"

    yield starter
    for exporter in running:
        await exporter.stop()


def client_context(
    server_ca: trustme.CA, client_cert: trustme.LeafCert | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context()
    server_ca.configure_trust(context)
    if client_cert is not None:
        client_cert.configure_cert(context)
    return context


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def get(
    url: str, context: ssl.SSLContext | None = None, auth: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": auth} if auth else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, url, ssl=context if context is not None else False, headers=headers
        ) as response,
    ):
        return response.status, dict(response.headers), await response.text()


TLS = "tls_server_config:\n  cert_file: {dir}/server.crt\n  key_file: {dir}/server.key\n"


async def test_metrics_are_served_over_tls_with_a_verified_certificate(
    start: Start, pki: tuple[Path, trustme.CA, trustme.CA]
) -> None:
    directory, server_ca, _ = pki
    url = await start(TLS.format(dir=directory))
    status, _, text = await get(url + "/metrics", client_context(server_ca))
    assert status == 200 and "datadog_exporter_build_info" in text
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await get(url + "/metrics", ssl.create_default_context())  # untrusted CA
    with pytest.raises(aiohttp.ClientError):
        await get(url.replace("https", "http") + "/metrics")  # plain HTTP gets nothing


async def test_basic_auth_rejects_missing_and_wrong_credentials_with_401(start: Start) -> None:
    url = await start(f"basic_auth_users:\n  prometheus: '{HASH}'\n")
    for auth in (None, basic("prometheus", "wrong"), basic("someone", PASSWORD), "Bearer x"):
        for method, path in (("GET", "/metrics"), ("GET", "/"), ("POST", "/-/reload")):
            status, headers, text = await get(url + path, auth=auth, method=method)
            assert status == 401
            assert headers["WWW-Authenticate"].startswith("Basic realm=")
            assert "datadog_exporter" not in text
    for _ in range(3):  # the second and third scrapes are answered from the cache
        status, _, text = await get(url + "/metrics", auth=basic("prometheus", PASSWORD))
        assert status == 200 and "datadog_exporter_build_info" in text


async def test_probes_reach_health_endpoints_without_credentials(start: Start) -> None:
    url = await start(f"basic_auth_users:\n  prometheus: '{HASH}'\n")
    for path in ("/-/healthy", "/-/ready"):
        status, _, _ = await get(url + path)
        assert status == 200


async def test_mtls_rejects_a_client_without_a_certificate(
    start: Start, pki: tuple[Path, trustme.CA, trustme.CA]
) -> None:
    directory, server_ca, client_ca = pki
    url = await start(
        TLS.format(dir=directory) + f"  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {directory}/clients-ca.crt\n"
        f"basic_auth_users:\n  prometheus: '{HASH}'\n"
    )
    auth = basic("prometheus", PASSWORD)
    with pytest.raises(aiohttp.ClientError):
        await get(url + "/metrics", client_context(server_ca), auth)
    stranger = trustme.CA().issue_cert("scraper")
    with pytest.raises(aiohttp.ClientError):
        await get(url + "/metrics", client_context(server_ca, stranger), auth)
    scraper = client_ca.issue_cert("scraper")
    status, _, text = await get(url + "/metrics", client_context(server_ca, scraper), auth)
    assert status == 200 and "datadog_exporter_build_info" in text


async def test_optional_client_certificates_are_verified_when_given(
    start: Start, pki: tuple[Path, trustme.CA, trustme.CA]
) -> None:
    directory, server_ca, client_ca = pki
    url = await start(
        TLS.format(dir=directory) + f"  client_auth_type: VerifyClientCertIfGiven\n"
        f"  client_ca_file: {directory}/clients-ca.crt\n"
    )
    status, _, _ = await get(url + "/metrics", client_context(server_ca))
    assert status == 200
    status, _, _ = await get(url + "/metrics", client_context(server_ca, client_ca.issue_cert("a")))
    assert status == 200
    with pytest.raises(aiohttp.ClientError):
        await get(url + "/metrics", client_context(server_ca, trustme.CA().issue_cert("b")))
