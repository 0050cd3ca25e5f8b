"""The installed CLI under libfaketime: its wall clock stepped by hours either way while its
monotonic clock runs true. Ages, lateness and staleness follow the monotonic clock."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers import http_get, parse_metrics, start_exporter, start_simulator, wait_for

pytestmark = pytest.mark.e2e

API_KEY = "e2e-faketime-api-key-0123456789abcdef"
APP_KEY = "e2e-faketime-app-key-fedcba9876543210fedcba"
# Debian installs it under the machine's multiarch directory (x86_64-linux-gnu, aarch64-...).
LIBFAKETIMES = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))


def faked_wall_clock(offset_file: Path) -> dict[str, str]:
    """The environment that lets the test step the process's wall clock by rewriting
    ``offset_file`` (``+2h``, ``-2h``), its monotonic clock untouched."""
    if not LIBFAKETIMES:
        pytest.fail("/usr/lib/*/faketime/libfaketime.so.1 is missing: install the package faketime")
    offset_file.write_text("+0\n")
    return {
        "LD_PRELOAD": str(LIBFAKETIMES[0]),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DONT_RESET": "1",
    }


def up_and_series(base: str) -> tuple[float, int]:
    samples = parse_metrics(http_get(base + "/metrics").decode())
    up = samples[("datadog_exporter_up", frozenset({("collector", "connections"), ("query", "a")}))]
    series = sum(1 for name, _ in samples if name.startswith("datadog_cnm_"))
    return up, series


def test_wall_clock_steps_neither_make_a_healthy_query_late_nor_keep_a_dead_one(
    tmp_path: Path,
) -> None:
    """+2h while polls succeed every 3 s: up 1 with every series at each scrape. Then the
    simulator gone and the clock set back 4h: the series go after stale_after (6 s), not
    hours later."""
    simulator, url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    config = tmp_path / "exporter.yml"
    config.write_text(
        "connections:\n  - {name: a, group_by: [client_service], interval: 3s, stale_after: 6s}\n"
    )
    offset = tmp_path / "faketime-offset"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(DD_API_URL=url, DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    env.update(faked_wall_clock(offset))
    exporter, base = start_exporter(tmp_path, "--config.file", str(config), env=env)
    try:
        wait_for(lambda: up_and_series(base) >= (1, 1), timeout=15, what="a first good poll")
        _, good = up_and_series(base)

        offset.write_text("+2h\n")
        scrapes = []
        stop = time.monotonic() + 10  # over three intervals: past the lateness bound (two)
        while time.monotonic() < stop:
            scrapes.append(up_and_series(base))
            time.sleep(0.2)
        assert scrapes and all(scrape == (1, good) for scrape in scrapes), scrapes
        assert "poll overdue" not in exporter.output()
        assert "dropped stale series" not in exporter.output()

        simulator.terminate()  # every poll fails from now on
        offset.write_text("-2h\n")
        gone_by = time.monotonic() + 6 + 3 + 5  # stale_after, an interval, slack for load
        wait_for(
            lambda: up_and_series(base) == (0, 0),
            timeout=gone_by - time.monotonic(),
            interval=0.2,
            what="the dead query's series dropped at stale_after",
        )
        exporter.wait_for_output(r"dropped stale series.*age_seconds=[6-9]\b", timeout=5)
    finally:
        code = exporter.terminate()
        simulator.terminate()
    assert code == 0
    assert "Traceback" not in exporter.output()
