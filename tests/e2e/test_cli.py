"""The installed CLI as a user runs it: config checks, a real run against the simulator."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import __version__
from tests.helpers import (
    Samples,
    exporter_command,
    http_get,
    parse_metrics,
    require_tool,
    start_exporter,
    start_simulator,
    wait_for,
)

pytestmark = pytest.mark.e2e

API_KEY = "e2e-api-key-5f0c1d2e3a4b5c6d7e8f9a0b"
APP_KEY = "e2e-app-key-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
CONFIG = """
datadog:
  timeout: 5s
connections:
  - name: pairs
    group_by: [client_service, server_service]
    limit: 500
    interval: 2s
    window: 5m
  - name: total
    interval: 2s
dns:
  - name: dns_by_query
    interval: 2s
cases:
  - name: by_status
    group_by: [status]
    interval: 2s
  - name: by_status_priority
    group_by: [status, priority]
    limit: 1000
    interval: 2s
audience:
  - entity: users
    interval: 2s
  - entity: accounts
    name: accts
    interval: 4s
"""
QUERIES = {
    ("connections", "pairs"),
    ("connections", "total"),
    ("dns", "dns_by_query"),
    ("cases", "by_status"),
    ("cases", "by_status_priority"),
    ("audience", "users"),
    ("audience", "accts"),
}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*exporter_command(), *args], capture_output=True, text=True, timeout=60, env=env
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(extra)
    return env


def test_version_flag_prints_the_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_config_schema_flag_prints_a_schema_that_checks_a_file(tmp_path: Path) -> None:
    """The installed CLI prints the shipped JSON Schema without a configuration, and what it
    prints is usable as is: check-jsonschema passes a good file and names a typo'd key."""
    result = cli("--config.schema")
    assert result.returncode == 0, result.stderr
    schema = tmp_path / "config.schema.json"
    schema.write_text(result.stdout)
    good, wrong = tmp_path / "good.yml", tmp_path / "wrong.yml"
    good.write_text(CONFIG)
    wrong.write_text("dns:\n  - name: lookups\n    windows: 5m\n")
    check = [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema)]
    assert subprocess.run([*check, str(good)], capture_output=True).returncode == 0
    proc = subprocess.run([*check, str(wrong)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "$.dns[0]: Additional properties are not allowed ('windows'" in proc.stdout


def test_config_check_prints_queries_and_api_calls_per_hour(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(CONFIG)
    result = cli("--config.file", str(config), "--config.check")
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for _, name in QUERIES)
    # Two queries every 2s: 2 * 1800 calls per hour to the connections endpoint.
    assert re.search(r"connections\s+3600\b", result.stdout), result.stdout
    assert re.search(r"dns\s+1800\b", result.stdout), result.stdout
    assert re.search(r"cases\s+3600\b", result.stdout), result.stdout
    assert re.search(r"audience\s+2700\b", result.stdout), result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connections: [{name: a, limit: 8000}]", "connections[0].limit"),
        ("connections: [{name: a, interval: soon}]", "connections[0].interval"),
        ("connections: [{name: a}, {name: a}]", "connections[1].name"),
        ("connections: [{name: a, colour: red}]", "connections[0].colour"),
        ("cases: [{name: c, group_by: [status], limit: 5000}]", "cases[0].limit"),
        ("dns: [{name: d, group_by: []}]", "dns[0].group_by"),
        ("audience: [{entity: users}, {entity: users, name: u}]", "audience[1].entity"),
        ("connections: [{name: a\n", "invalid YAML"),
    ],
)
def test_bad_config_names_the_key_and_exits_non_zero(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "bad.yml"
    config.write_text(text)
    for args in (["--config.check"], []):
        result = cli("--config.file", str(config), *args, env=clean_env())
        assert result.returncode == 1
        assert expected in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = cli("--config.file", str(tmp_path / "nope.yml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_missing_keys_outside_demo_mode_exit_non_zero(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text(CONFIG)
    result = cli("--config.file", str(config), env=clean_env())
    assert result.returncode == 1
    assert "DD_API_KEY" in result.stderr and "Traceback" not in result.stderr


def test_run_against_simulator_serves_parsable_clean_metrics(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    simulator, url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    config = tmp_path / "exporter.yml"
    config.write_text(CONFIG)
    env = clean_env(DD_API_URL=url, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    exporter, base = start_exporter(
        tmp_path, "--config.file", str(config), "--log.level", "debug", env=env
    )
    try:
        assert http_get(base + "/-/healthy").startswith(b"Healthy")
        assert http_get(base + "/-/ready").startswith(b"Ready")

        def all_up() -> Samples | None:
            samples = parse_metrics(http_get(base + "/metrics").decode())
            ups = {
                (dict(lab)["collector"], dict(lab)["query"]): v
                for (n, lab), v in samples.items()
                if n == "datadog_exporter_up"
            }
            return samples if ups == dict.fromkeys(QUERIES, 1.0) else None

        samples = wait_for(all_up, timeout=30, what="every query up")
        text = http_get(base + "/metrics").decode()
        pairs = [
            labels
            for (name, labels), _ in samples.items()
            if name == "datadog_cnm_tcp_retransmits" and ("query", "pairs") in labels
        ]
        assert len(pairs) > 1
        assert all(
            {k for k, _ in labels} == {"query", "client_service", "server_service"}
            for labels in pairs
        )
        totals = [
            labels
            for (name, labels), _ in samples.items()
            if name == "datadog_cnm_tcp_retransmits" and ("query", "total") in labels
        ]
        assert totals == [frozenset({("query", "total")})]
        assert (
            "datadog_exporter_window_seconds",
            frozenset({("collector", "connections"), ("query", "pairs")}),
        ) in samples
        assert any(n == "datadog_exporter_api_requests_total" for n, _ in samples)
        # The CLI turns prometheus_client's _created series off (Go exporters have none).
        assert not any(n.endswith("_created") for n, _ in samples)
        names = {name for name, _ in samples}
        assert {
            "datadog_dns_requests",
            "datadog_dns_nxdomain_responses",
            "datadog_dns_success_latency_percentile",
            "datadog_cases",
            "datadog_cases_all_groups",
            "datadog_audience_connection_info",
            "datadog_audience_connection_fields",
            "datadog_audience_connection_created_timestamp_seconds",
            "datadog_audience_connection_updated_timestamp_seconds",
            "datadog_audience_connections",
        } <= names
        assert (
            "datadog_cases",
            frozenset({("query", "by_status_priority"), ("status_priority", "OPEN,P1")}),
        ) in samples
        assert (
            "datadog_audience_connections",
            frozenset({("entity", "accounts")}),
        ) in samples
        windows = {
            dict(labels)["collector"]
            for name, labels in samples
            if name == "datadog_exporter_window_seconds"
        }
        assert windows == {"connections", "dns"}
        endpoints = {
            dict(labels)["endpoint"]
            for name, labels in samples
            if name == "datadog_exporter_api_requests_total"
        }
        assert endpoints == {"connections", "dns", "cases", "audience"}

        lint = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert lint.returncode == 0 and lint.stderr.strip() == "", lint.stderr

        compressed = http_get(base + "/metrics", headers={"Accept-Encoding": "gzip"})
        unzipped = parse_metrics(gzip.decompress(compressed).decode())
        cnm_names = {name for name, _ in samples if name.startswith("datadog_cnm_")}
        assert {name for name, _ in unzipped if name.startswith("datadog_cnm_")} == cnm_names
        assert len(cnm_names) == 17

        landing = http_get(base + "/").decode()
        assert "pairs" in landing and "/metrics" in landing and __version__ in landing
    finally:
        code = exporter.terminate(timeout=10)
        simulator.terminate()
    assert code == 0
    output = exporter.output()
    assert API_KEY not in output and APP_KEY not in output
    assert API_KEY not in text and APP_KEY not in text
    assert "Traceback" not in output


def test_demo_mode_serves_data_without_keys(tmp_path: Path) -> None:
    exporter, base = start_exporter(tmp_path, "--demo", env=clean_env())
    try:

        def has_data() -> bool:
            text = http_get(base + "/metrics").decode()
            return all(
                f"{name}{{" in text
                for name in (
                    "datadog_cnm_tcp_rtt_seconds",
                    "datadog_dns_requests",
                    "datadog_cases",
                    "datadog_audience_connection_info",
                )
            )

        wait_for(has_data, timeout=40, what="demo data from all four collectors")
    finally:
        assert exporter.terminate(timeout=10) == 0


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and __version__ in result.stdout
