"""A reload that points the exporter at another Datadog URL (``datadog.api_url``): the old
URL's rate-limit state is forgotten and the requests go to the new URL, without a restart."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import http_get, parse_metrics, start_exporter, start_simulator, wait_for

pytestmark = pytest.mark.e2e

API_KEY = "e2e-url-api-key-0123456789abcdef0123"
APP_KEY = "e2e-url-app-key-fedcba9876543210fedcba98"
CONFIG = "datadog: {{api_url: '{url}', timeout: 2s}}\nconnections: [{{name: q, interval: 1s}}]\n"
ENDPOINT = frozenset({("account", "default"), ("endpoint", "connections")})
QUERY = frozenset({("collector", "connections"), ("query", "q")})


def requests_to(simulator_url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(simulator_url + "/_simulator/requests", timeout=5) as response:
        records: list[dict[str, object]] = json.load(response)["requests"]
    return [r for r in records if r["endpoint"] == "connections"]


def metrics(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_metrics(http_get(base + "/metrics").decode())


def test_a_reload_to_a_new_url_forgets_the_old_rate_limit_and_polls_the_new_url(
    tmp_path: Path,
) -> None:
    old, old_url = start_simulator(
        tmp_path, "--fault", "connections:rate_limit:3600", api_key=API_KEY, app_key=APP_KEY
    )
    new, new_url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    config = tmp_path / "exporter.yml"
    config.write_text(CONFIG.format(url=old_url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)  # no DD_API_URL: the file decides
    exporter, base = start_exporter(tmp_path, "--config.file", str(config), env=env)
    until = ("datadog_exporter_rate_limited_until_timestamp_seconds", ENDPOINT)
    try:
        # The old URL answered 429 for an hour: every poll of the endpoint is held back.
        wait_for(
            lambda: metrics(base).get(until, 0) > time.time() + 3000,
            timeout=20,
            what="the old URL's 429",
        )
        assert [r["status"] for r in requests_to(old_url)] == [429]
        assert requests_to(new_url) == []

        config.write_text(CONFIG.format(url=new_url))
        exporter.popen.send_signal(signal.SIGHUP)
        exporter.wait_for_output(r"configuration reloaded", timeout=10)
        wait_for(
            lambda: metrics(base).get(("datadog_exporter_up", QUERY)) == 1,
            timeout=20,
            what="the query up through the new URL",
        )
        samples = metrics(base)
        old_requests, new_requests = requests_to(old_url), requests_to(new_url)
    finally:
        code = exporter.terminate()
        old.terminate()
        new.terminate()
    assert code == 0
    assert samples[until] == 0  # not rate limited any more
    assert samples[("datadog_exporter_rate_limit_limit", ENDPOINT)] > 0  # the new URL's headers
    assert [r["status"] for r in old_requests] == [429]  # nothing more went to the old URL
    assert new_requests and all(r["status"] == 200 for r in new_requests)
    assert "Traceback" not in exporter.output()
