"""The installed CLI's listeners: several --web.listen-address, and --web.max-requests."""

from __future__ import annotations

import base64
import gzip
import os
import re
import socket
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import pytest

from tests.helpers import (
    Process,
    http_get,
    parse_metrics,
    start_exporter,
    start_simulator,
    wait_for,
)

pytestmark = pytest.mark.e2e

API_KEY = "e2e-api-key-7c1d2e3f4a5b6c7d8e9f0a1b"
APP_KEY = "e2e-app-key-1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e"
PASSWORD = "scrape-password"
# One connections answer at Datadog's 7,500-row limit: a plain /metrics body of well over
# ten megabytes, far beyond what loopback socket buffers take in, so a client that does not
# read keeps its request in flight.
BIG_CONFIG = """
connections:
  - name: big
    group_by: [client_service, server_service, client_availability_zone, network.server.port]
    limit: 7500
    interval: 1m
"""
SLOW_CLIENT_RECEIVE_BUFFER = 4096


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(extra)
    return env


def listening_ports(exporter: Process, count: int) -> list[int]:
    """The ports of the first ``count`` "listening" lines, in the order of the flags."""

    def ports() -> list[int] | None:
        found = re.findall(r"msg=listening .*?port=(\d+)", exporter.output())
        return [int(port) for port in found] if len(found) >= count else None

    found: list[int] = wait_for(ports, timeout=20, what=f"{count} listening lines")
    return found[:count]


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        http_get(url, headers=headers)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


def test_every_listen_address_serves_with_the_same_web_config(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    # start_exporter passes the first --web.listen-address 127.0.0.1:0; this is the second.
    exporter, _ = start_exporter(
        tmp_path,
        "--web.listen-address",
        "127.0.0.1:0",
        "--demo",
        "--web.config.file",
        str(web),
        env=clean_env(),
    )
    auth = {
        "Authorization": "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    }
    try:
        first, second = listening_ports(exporter, 2)
        assert first != second
        for port in (first, second):
            base = f"http://127.0.0.1:{port}"
            assert status_of(base + "/metrics") == 401
            assert status_of(base + "/") == 401
            assert http_get(base + "/-/healthy").startswith(b"Healthy")
            text = http_get(base + "/metrics", headers=auth).decode()
            assert "datadog_exporter_build_info" in text
    finally:
        assert exporter.terminate() == 0
    assert "Traceback" not in exporter.output()


@contextmanager
def slow_readers(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections that ask for /metrics (plain text) and never read the answer."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_CLIENT_RECEIVE_BUFFER)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def self_metric(base: str, name: str) -> float:
    body = http_get(base + "/metrics", timeout=30, headers={"Accept-Encoding": "gzip"})
    return parse_metrics(gzip.decompress(body).decode())[(name, frozenset())]


@pytest.fixture
def big_simulator(tmp_path: Path) -> Iterator[str]:
    simulator, url = start_simulator(
        tmp_path, "--universe", "20000", api_key=API_KEY, app_key=APP_KEY
    )
    try:
        yield url
    finally:
        simulator.terminate()


def start_big_exporter(tmp_path: Path, url: str, *args: str) -> tuple[Process, str]:
    config = tmp_path / "big.yml"
    config.write_text(BIG_CONFIG)
    env = clean_env(DD_API_URL=url, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    exporter, base = start_exporter(tmp_path, "--config.file", str(config), *args, env=env)

    def big_body() -> int:
        size = len(http_get(base + "/metrics", timeout=30))
        return size if size > 10_000_000 else 0

    wait_for(big_body, timeout=60, interval=0.5, what="the 7,500-row answer on /metrics")
    return exporter, base


def test_scrapes_beyond_max_requests_get_503_until_one_finishes(
    tmp_path: Path, big_simulator: str
) -> None:
    exporter, base = start_big_exporter(tmp_path, big_simulator, "--web.max-requests", "2")
    port = int(base.rsplit(":", 1)[1])
    try:
        with slow_readers(port, 2):
            # Both slow scrapes are in flight once a third is refused.
            wait_for(
                lambda: status_of(base + "/metrics") == 503,
                timeout=20,
                what="a third scrape refused with 503",
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                http_get(base + "/metrics", headers={"Accept-Encoding": "gzip"})
            assert refused.value.code == 503
            assert b"Limit of concurrent requests reached (2)" in refused.value.read()
            # The limit is for the metrics path only: probes still answer.
            assert http_get(base + "/-/healthy").startswith(b"Healthy")
        # The slow clients went away: their slots are free again.
        wait_for(
            lambda: self_metric(base, "datadog_exporter_scrapes_in_flight") == 1,
            timeout=20,
            what="a scrape served again, the only one in flight",
        )
        assert self_metric(base, "datadog_exporter_scrapes_rejected_total") >= 2
    finally:
        assert exporter.terminate() == 0
    assert "Traceback" not in exporter.output()
