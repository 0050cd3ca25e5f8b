"""SIGHUP to the installed CLI re-reads the configuration file."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers import http_get, parse_metrics, start_exporter, start_simulator, wait_for

pytestmark = pytest.mark.e2e

API_KEY = "e2e-reload-api-key-0123456789abcdef"
APP_KEY = "e2e-reload-app-key-fedcba9876543210fedcba"


def queries(base: str) -> set[str]:
    samples = parse_metrics(http_get(base + "/metrics").decode())
    return {dict(labels)["query"] for name, labels in samples if name == "datadog_exporter_up"}


def test_sighup_adds_and_removes_queries_and_survives_a_bad_file(tmp_path: Path) -> None:
    simulator, url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    config = tmp_path / "exporter.yml"
    config.write_text("connections:\n  - {name: first, interval: 1h}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(DD_API_URL=url, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    exporter, base = start_exporter(tmp_path, "--config.file", str(config), env=env)
    try:
        assert queries(base) == {"first"}
        config.write_text("connections:\n  - {name: second, interval: 1h}\n")
        exporter.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: queries(base) == {"second"}, timeout=10, what="reloaded queries")

        config.write_text("connections: [{name: second, colour: red}]\n")
        exporter.popen.send_signal(signal.SIGHUP)
        exporter.wait_for_output(r"reload failed.*connections\[0\]\.colour", timeout=10)
        text = http_get(base + "/metrics").decode()
        assert "datadog_exporter_config_last_reload_successful 0.0" in text
        assert queries(base) == {"second"}
    finally:
        code = exporter.terminate()
        simulator.terminate()
    assert code == 0
    assert "Traceback" not in exporter.output()
