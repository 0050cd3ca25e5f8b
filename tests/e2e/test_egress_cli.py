"""The installed CLI's way out, as a user sets it up: SSL_CERT_FILE and datadog.ca_file
against the simulator served over HTTPS, and proxy or CA settings it cannot use refused at
start-up with the variable or key named."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme

from tests.helpers import Process, exporter_command, http_get, parse_metrics, wait_for

pytestmark = pytest.mark.e2e

API_KEY = "e2e-api-key-7c1d2e3a4b5c6d7e8f9a0b1c"
APP_KEY = "e2e-app-key-1a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5e"
QUERY = "connections: [{name: pairs, group_by: [client_service], interval: 1s}]\n"
UP = ("datadog_exporter_up", frozenset({("collector", "connections"), ("query", "pairs")}))


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DD_")
        and k.lower() not in ("https_proxy", "http_proxy", "no_proxy")
        and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")
    }
    env.update(extra)
    return env


def https_simulator(tmp_path: Path, ca: trustme.CA) -> tuple[Process, str]:
    cert = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "server.pem", tmp_path / "server.key"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    process = Process(
        [
            *(sys.executable, "-m", "simulator", "--listen", "127.0.0.1:0"),
            *("--api-key", API_KEY, "--app-key", APP_KEY),
            *("--tls-cert-file", str(chain), "--tls-key-file", str(key)),
        ],
        tmp_path / f"simulator-{time.monotonic_ns()}.log",
    )
    match = process.wait_for_output(r"listening on (https://127\.0\.0\.1:\d+)")
    return process, match.group(1)


def poll_outcome(tmp_path: Path, config: str, env: dict[str, str]) -> tuple[float, str]:
    """Run the exporter until its query has been polled; its `up` and its log."""
    path = tmp_path / f"exporter-{time.monotonic_ns()}.yml"
    path.write_text(config)
    exporter = Process(
        [*exporter_command(), "--web.listen-address", "127.0.0.1:0", "--config.file", str(path)],
        tmp_path / f"exporter-{time.monotonic_ns()}.log",
        env=env,
    )
    try:
        port = exporter.wait_for_output(r"msg=listening .*port=(\d+)").group(1)

        def polled() -> tuple[float, str] | None:
            samples = parse_metrics(http_get(f"http://127.0.0.1:{port}/metrics").decode())
            attempted = any(n == "datadog_exporter_api_requests_total" for n, _ in samples)
            failed = "poll failed" in exporter.output()
            if samples.get(UP) == 1.0 or (attempted and failed):
                return samples[UP], exporter.output()
            return None

        outcome: tuple[float, str] = wait_for(polled, timeout=30, what="a finished poll")
        return outcome
    finally:
        exporter.terminate()


def test_ssl_cert_file_and_ca_file_each_make_a_private_ca_trusted(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "private-ca.pem"
    ca_file.write_bytes(ca.cert_pem.bytes())
    simulator, url = https_simulator(tmp_path, ca)
    env = clean_env(DD_API_URL=url, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    try:
        up, log = poll_outcome(tmp_path, QUERY, env)
        assert up == 0.0
        assert "TLS handshake failed: certificate of 127.0.0.1:" in log and "datadog.ca_file" in log

        up, log = poll_outcome(tmp_path, QUERY, {**env, "SSL_CERT_FILE": str(ca_file)})
        assert up == 1.0, log

        with_ca = f"datadog: {{ca_file: '{ca_file}'}}\n" + QUERY
        up, log = poll_outcome(tmp_path, with_ca, env)
        assert up == 1.0, log
    finally:
        simulator.terminate()
    assert "Traceback" not in log


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*exporter_command(), *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_an_unusable_proxy_variable_stops_the_start_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(QUERY)
    env = clean_env(
        DD_API_KEY=API_KEY,
        DD_APP_KEY=APP_KEY,
        https_proxy="socks5://svc:proxy-passw0rd-e2e@proxy.internal:1080",
    )
    result = cli("--config.file", str(config), env=env)
    assert result.returncode == 1
    assert "error: invalid environment:" in result.stderr
    assert "https_proxy: socks5:// proxies are not supported" in result.stderr
    assert "proxy-passw0rd-e2e" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_bad_ca_file_is_named_by_config_check(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(f"datadog: {{ca_file: '{tmp_path / 'missing.pem'}'}}\n" + QUERY)
    result = cli("--config.file", str(config), "--config.check", env=clean_env())
    assert result.returncode == 1
    assert "datadog.ca_file: cannot read" in result.stderr
    assert "Traceback" not in result.stderr
