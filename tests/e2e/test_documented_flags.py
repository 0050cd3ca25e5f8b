"""Flags as docs/reference/command-line.md documents them, through the installed CLI:
``--log.format json`` and ``--web.telemetry-path``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    Process,
    exporter_command,
    http_get,
    parse_metrics,
    start_exporter,
    start_simulator,
    wait_for,
)

pytestmark = pytest.mark.e2e

API_KEY = "flags-api-key-0123456789abcdef01234567"
APP_KEY = "flags-app-key-76543210fedcba9876543210fedcba98"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LEVELS = {"debug", "info", "warn", "error"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(extra)
    return env


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line of the output as a JSON object; fails on any line that is not one."""
    events = []
    for number, line in enumerate(output.splitlines(), 1):
        try:
            event = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(event, dict), f"line {number} is not a JSON object: {line!r}"
        events.append(event)
    return events


def test_json_logs_are_one_object_per_line_with_the_documented_fields(tmp_path: Path) -> None:
    """At debug level, with polls failing and a reload, every line of the exporter's output is
    one JSON object with ts, level, logger and msg; an event's fields are keys of their own."""
    simulator, url = start_simulator(
        tmp_path, "--fault", "dns:status:400", api_key=API_KEY, app_key=APP_KEY
    )
    config = tmp_path / "exporter.yml"
    config.write_text(
        "connections: [{name: pairs, group_by: [client_service], interval: 1s}]\n"
        "dns: [{name: lookups, interval: 1s}]\n"
    )
    env = clean_env(DD_API_URL=url, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    exporter = Process(
        [
            *exporter_command(),
            "--config.file",
            str(config),
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.format",
            "json",
            "--log.level",
            "debug",
        ],
        tmp_path / "exporter.log",
        env=env,
    )
    try:
        match = exporter.wait_for_output(r'"msg": "listening".*"port": (\d+)')
        base = f"http://127.0.0.1:{match.group(1)}"
        exporter.wait_for_output(r'"msg": "poll failed"')
        up = ("datadog_exporter_up", frozenset({("collector", "connections"), ("query", "pairs")}))

        def pairs_up() -> bool:
            return parse_metrics(http_get(base + "/metrics").decode()).get(up) == 1

        wait_for(pairs_up, timeout=20, what="the connections query up")
        exporter.popen.send_signal(1)  # SIGHUP: reload the (unchanged) file
        exporter.wait_for_output(r'"msg": "configuration reloaded"')
    finally:
        code = exporter.terminate()
        simulator.terminate()
    assert code == 0
    events = json_lines(exporter.output())
    for event in events:
        assert TIMESTAMP.fullmatch(event["ts"]), event
        assert event["level"] in LEVELS, event
        assert isinstance(event["logger"], str) and event["logger"], event
        assert isinstance(event["msg"], str), event
    by_message = {event["msg"]: event for event in events}
    listening = by_message["listening"]
    assert listening["address"] == "127.0.0.1:0" and isinstance(listening["port"], int)
    failed = by_message["poll failed"]
    assert failed["level"] == "warn" and failed["logger"].startswith("exporter")
    assert (failed["collector"], failed["query"], failed["reason"]) == (
        "dns",
        "lookups",
        "http_error",
    )
    assert "400" in failed["error"]
    assert by_message["configuration reloaded"]["unchanged"] == 2
    assert "shutting down" in by_message
    assert {event["level"] for event in events} >= {"debug", "info", "warn"}
    assert "Traceback" not in exporter.output()


def test_metrics_are_served_at_the_telemetry_path_and_the_landing_page_links_it(
    tmp_path: Path,
) -> None:
    exporter, base = start_exporter(
        tmp_path, "--demo", "--web.telemetry-path", "/internal/metrics", env=clean_env()
    )
    try:

        def data_served() -> dict[Any, float] | None:
            samples = parse_metrics(http_get(base + "/internal/metrics").decode())
            ups = [v for (name, _), v in samples.items() if name == "datadog_exporter_up"]
            data = [name for name, _ in samples if name.startswith("datadog_cnm_")]
            return samples if ups and all(ups) and data else None

        samples = wait_for(data_served, timeout=30, what="demo data at /internal/metrics")
        assert any(name == "datadog_exporter_build_info" for name, _ in samples)
        with pytest.raises(urllib.error.HTTPError) as missing:
            http_get(base + "/metrics")
        assert missing.value.code == 404
        landing = http_get(base + "/").decode()
        assert '<a href="/internal/metrics">Metrics</a>' in landing
        assert 'href="/metrics"' not in landing
    finally:
        exporter.terminate()


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("metrics", "must start with /"),
        ("/", "one of the exporter's own paths"),
        ("/-/ready", "one of the exporter's own paths"),
        ("/-/reload", "one of the exporter's own paths"),
    ],
)
def test_an_unusable_telemetry_path_is_a_usage_error(path: str, why: str) -> None:
    result = subprocess.run(
        [*exporter_command(), "--demo", "--web.telemetry-path", path],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 2, result.stderr
    line = f"error: --web.telemetry-path {path!r}"
    assert result.stderr.startswith(line) and why in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
