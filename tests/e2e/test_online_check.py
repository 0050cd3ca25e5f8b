"""--config.check.online through the installed CLI against the simulator: per account and
endpoint OK or the reason with its hint, rate-limit headers, rows and N/A group_by fields;
exit 0 only when every endpoint answered 200; never more calls than it announces."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import exporter_command, http_get, start_simulator

pytestmark = pytest.mark.e2e

API_KEY = "online-api-key-1a2b3c4d5e6f7a8b"
APP_KEY = "online-app-key-8b7a6f5e4d3c2b1a"
CONFIG = """
connections:
  - {name: pairs, group_by: [client_service, client_servce], interval: 1m}
  - {name: second, interval: 1m}
dns:
  - {name: lookups, interval: 1m}
cases:
  - {name: by_prio, group_by: [prio], interval: 1m}
audience:
  - {entity: users}
network_health:
  - {name: insights}
"""


def check(config: Path, url: str, api_key: str = API_KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env |= {"DD_API_URL": url, "DD_API_KEY": api_key, "DD_APP_KEY": APP_KEY}
    return subprocess.run(
        [*exporter_command(), "--config.file", str(config), "--config.check.online"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def requests_made(url: str) -> list[str]:
    return [r["endpoint"] for r in json.loads(http_get(url + "/_simulator/requests"))["requests"]]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(CONFIG)
    return path


def test_every_endpoint_answering_passes_and_says_what_came_back(
    tmp_path: Path, config: Path
) -> None:
    simulator, url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    try:
        result = check(config, url)
        made = requests_made(url)
    finally:
        simulator.terminate()
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "online check: 6 calls at most" in out
    assert sorted(made) == [
        "audience",
        "cases",
        "connections",
        "dns",
        "network_health",
        "validate",
    ]
    assert re.search(r"validate\s+OK\s+API key valid", out), out
    # A typo in group_by comes back N/A (the simulator answers as Datadog does).
    assert re.search(
        r"connections\s+OK\s+query connections/pairs; 1 row returned; "
        r"group_by fields answered N/A: client_servce; rate limit 1000 per 1m, \d+ left",
        out,
    ), out
    # The simulator counts a case field it does not have as N/A, as Datadog's UI does.
    assert re.search(
        r"cases\s+OK\s+query cases/by_prio; 1 row returned; "
        r"group_by fields answered N/A: prio",
        out,
    ), out
    assert f"base URL {url} (from DD_API_URL), direct" in out
    # Network Health Insights: one row per insight, nothing to judge as N/A.
    assert re.search(r"network_health\s+OK\s+query network_health/insights; \d+ rows returned", out)
    assert "online check OK: 5 of 5 endpoints answered 200" in out


def test_a_key_without_a_permission_fails_that_endpoint_with_the_hint(
    tmp_path: Path, config: Path
) -> None:
    simulator, url = start_simulator(
        tmp_path, "--deny-permission", "cases", api_key=API_KEY, app_key=APP_KEY
    )
    try:
        result = check(config, url)
    finally:
        simulator.terminate()
    out = result.stdout
    assert result.returncode == 1
    online = out[out.index("online check:") :]
    (line,) = [line for line in online.splitlines() if line.strip().startswith("cases ")]
    assert re.match(r"\s+cases\s+forbidden\s+query cases/by_prio; rate limit 1000 per 1m", line)
    # The hint of the live poll's failure line, with the setting that chose the URL.
    assert "HTTP 403: Forbidden: Failed permission authorization checks" in line
    assert "needs the cases_read permission" in line
    assert f"organisation at {url} (" in line and "set by DD_API_URL" in line
    assert re.search(r"dns\s+OK", out)
    assert "online check FAILED: 4 of 5 endpoints answered 200" in out
    assert APP_KEY not in out + result.stderr


def test_network_health_without_its_permission_names_it(tmp_path: Path, config: Path) -> None:
    simulator, url = start_simulator(
        tmp_path, "--deny-permission", "network_health", api_key=API_KEY, app_key=APP_KEY
    )
    try:
        result = check(config, url)
    finally:
        simulator.terminate()
    online = result.stdout[result.stdout.index("online check:") :]
    (line,) = [row for row in online.splitlines() if row.strip().startswith("network_health ")]
    assert re.match(r"\s+network_health\s+forbidden", line), line
    assert "needs the network_health_insights_read permission" in line
    assert result.returncode == 1


def test_a_refused_api_key_stops_after_one_call(tmp_path: Path, config: Path) -> None:
    simulator, url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    try:
        result = check(config, url, api_key="wrong-api-key-000000000")
        made = requests_made(url)
    finally:
        simulator.terminate()
    assert result.returncode == 1
    assert made == ["validate"]
    assert re.search(
        r"validate\s+forbidden\s+validate: HTTP 403: Forbidden; Datadog rejected the API key "
        r"\(DD-API-KEY\); .*, set by DD_API_URL$",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
    assert "connections: not called (the key check failed)" in result.stdout
    assert "wrong-api-key" not in result.stdout + result.stderr
