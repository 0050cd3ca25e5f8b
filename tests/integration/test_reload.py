"""Reloading the configuration: unchanged queries keep data and schedule, the rest follows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from exporter.app import Exporter, RunOptions, build_exporter
from exporter.config.schema import Config, load_config, parse_config
from exporter.logs import Redactor
from exporter.scheduler import PollPolicy
from simulator import Fault, Simulator
from tests.helpers import Samples, parse_metrics

from .conftest import credentials

V1 = """
connections:
  - {name: keep, group_by: [client_service], interval: 1h, limit: 11}
  - {name: gone, group_by: [client_service], interval: 1h, limit: 12}
  - {name: reshaped, group_by: [client_service], interval: 1h, limit: 13}
  - {name: broken, query: "@bad", interval: 1h, limit: 15}
"""
V2 = """
connections:
  - {name: reshaped, group_by: [server_service], interval: 1h, limit: 13}
  - {name: keep, group_by: [client_service], interval: 1h, limit: 11}
  - {name: fresh, group_by: [client_service], interval: 1h, limit: 14}
"""


@pytest.fixture
async def exporter(simulator: Simulator, tmp_path: Path) -> AsyncIterator[Exporter]:
    path = tmp_path / "exporter.yml"
    path.write_text(V1)
    redactor = Redactor()

    def source() -> tuple[Config, str]:
        return load_config(path), simulator.url

    running = build_exporter(
        load_config(path),
        simulator.url,
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        config_source=source,
        poll_policy=PollPolicy(startup_spread=0.0),
        environ={},
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def until(condition: Callable[[], object], within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {within}s")


async def request(exporter: Exporter, method: str, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{exporter.port}{path}"
    async with aiohttp.ClientSession() as session, session.request(method, url) as response:
        return response.status, await response.text()


async def scrape(exporter: Exporter) -> Samples:
    status, text = await request(exporter, "GET", "/metrics")
    assert status == 200
    return parse_metrics(text)


def queries_on(samples: Samples) -> set[str]:
    return {dict(labels).get("query", "") for _, labels in samples} - {""}


def polls(simulator: Simulator, limit: int) -> int:
    return sum(1 for r in simulator.requests_to("connections") if r.query["limit"] == str(limit))


def polled_all(exporter: Exporter) -> bool:
    return all(
        s.last_attempt is not None and s.last_duration for s in exporter.scheduler.query_states()
    )


def poll_tasks() -> dict[str, asyncio.Task[None]]:
    """The running poll loops' tasks, by query name (each task is named after its query)."""
    return {
        task.get_name().removeprefix("poll connections/"): task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("poll ")
    }


async def test_reload_applies_only_the_differences(
    exporter: Exporter, simulator: Simulator, tmp_path: Path
) -> None:
    await until(lambda: polled_all(exporter))
    before = await scrape(exporter)
    assert queries_on(before) == {"keep", "gone", "reshaped", "broken"}
    assert any(
        n == "datadog_exporter_poll_errors_total" and ("query", "broken") in lab
        for n, lab in before
    )
    keep_state = exporter.scheduler.state(("connections", "keep"))
    keep_task = poll_tasks()["keep"]
    keep_series = {
        k: v
        for k, v in before.items()
        if ("query", "keep") in k[1] and k[0].startswith("datadog_cnm_")
    }
    assert keep_series

    (tmp_path / "exporter.yml").write_text(V2)
    status, text = await request(exporter, "POST", "/-/reload")
    assert status == 200, text
    assert "1 added, 1 changed, 2 removed, 1 unchanged" in text
    await until(lambda: polls(simulator, 14) == 1 and polls(simulator, 13) == 2)
    await until(lambda: exporter.scheduler.state(("connections", "fresh")).up)
    await until(lambda: exporter.scheduler.state(("connections", "reshaped")).up)
    after = await scrape(exporter)

    # Unchanged: same task, same state, no extra poll, same series.
    assert poll_tasks()["keep"] is keep_task
    assert exporter.scheduler.state(("connections", "keep")) is keep_state
    assert polls(simulator, 11) == 1
    assert {k: v for k, v in after.items() if k in keep_series} == keep_series
    # Removed: no data series and no self-metric left, counters included.
    assert queries_on(after) == {"keep", "reshaped", "fresh"}
    # Changed: restarted with its new shape; nothing of the old shape survives.
    reshaped = [
        lab
        for n, lab in after
        if n == "datadog_cnm_client_sent_bytes" and ("query", "reshaped") in lab
    ]
    assert reshaped and all({k for k, _ in lab} == {"query", "server_service"} for lab in reshaped)
    assert [s.name for s in exporter.scheduler.query_states()] == ["reshaped", "keep", "fresh"]
    assert after[("datadog_exporter_config_last_reload_successful", frozenset())] == 1


async def test_invalid_configuration_is_rejected_and_the_old_one_keeps_running(
    exporter: Exporter, simulator: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await until(lambda: polled_all(exporter))
    started = (await scrape(exporter))[
        ("datadog_exporter_config_last_reload_success_timestamp_seconds", frozenset())
    ]
    assert started > 0
    tasks = poll_tasks()
    assert set(tasks) == {"keep", "gone", "reshaped", "broken"}
    (tmp_path / "exporter.yml").write_text("connections: [{name: a, limit: 8000}]\n")
    with caplog.at_level(logging.INFO, logger="exporter"):
        status, text = await request(exporter, "POST", "/-/reload")
    assert status == 400 and "connections[0].limit" in text
    failures = [r for r in caplog.records if r.message.startswith("reload failed")]
    assert len(failures) == 1 and failures[0].levelno == logging.ERROR
    samples = await scrape(exporter)
    assert samples[("datadog_exporter_config_last_reload_successful", frozenset())] == 0
    assert (
        samples[("datadog_exporter_config_last_reload_success_timestamp_seconds", frozenset())]
        == started
    )
    assert poll_tasks() == tasks and all(not t.done() for t in tasks.values())
    assert queries_on(samples) == {"keep", "gone", "reshaped", "broken"}

    (tmp_path / "exporter.yml").write_text(V1)
    status, _ = await request(exporter, "POST", "/-/reload")
    assert status == 200
    samples = await scrape(exporter)
    assert samples[("datadog_exporter_config_last_reload_successful", frozenset())] == 1
    assert (
        samples[("datadog_exporter_config_last_reload_success_timestamp_seconds", frozenset())]
        > started
    )
    assert poll_tasks() == tasks  # identical configuration: nothing restarted


async def test_reload_is_unavailable_without_a_configuration_file(simulator: Simulator) -> None:
    redactor = Redactor()
    running = build_exporter(
        parse_config("connections: [{name: q, interval: 1h}]"),
        simulator.url,
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        environ={},
    )
    await running.start()
    try:
        status, _ = await request(running, "POST", "/-/reload")
    finally:
        await running.stop()
    assert status == 501


async def test_datadog_max_attempts_reaches_every_poll_and_follows_a_reload(
    exporter: Exporter, simulator: Simulator, tmp_path: Path
) -> None:
    """A running query sends datadog.max_attempts requests per failing poll: 3 by default,
    then what the reloaded file says."""
    await until(lambda: polled_all(exporter))
    simulator.set_fault("connections", Fault(kind="status", status=500))
    key = ("connections", "keep")
    before = polls(simulator, 11)
    await exporter.scheduler.poll_once(key, asyncio.get_running_loop().time() + 30)
    assert polls(simulator, 11) - before == 3
    (tmp_path / "exporter.yml").write_text("datadog:\n  max_attempts: 1\n" + V1)
    assert (await exporter.reload())[0]
    before = polls(simulator, 11)
    await exporter.scheduler.poll_once(key, asyncio.get_running_loop().time() + 30)
    assert polls(simulator, 11) - before == 1
