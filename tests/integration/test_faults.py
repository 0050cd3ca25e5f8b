"""Every fault the API can throw, through the simulator: the reason counted, one log line,
the last good data still served, and the other query unaffected."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import pytest

from exporter.app import RunOptions, build_exporter
from exporter.config.schema import parse_config
from exporter.logs import Redactor
from exporter.scheduler import PollPolicy, Scheduler
from simulator import Fault, Simulator

from .conftest import credentials, deadline, scheduler_against, served
from .test_scheduler import job, query_series

FAULTS = [
    ("truncated", Fault(kind="truncated"), "decode_error"),
    ("not_json", Fault(kind="malformed"), "decode_error"),
    ("html_error_page", Fault(kind="html"), "forbidden"),
    ("html_with_200", Fault(kind="html", status=200), "decode_error"),
    ("wrong_shape", Fault(kind="wrong_shape"), "decode_error"),
    ("huge", Fault(kind="huge", size_bytes=20 * 1024 * 1024), "too_large"),
    ("hang", Fault(kind="hang"), "timeout"),
    ("drip", Fault(kind="drip", seconds=0.3, chunk_size=64), "timeout"),
    ("5xx", Fault(kind="status", status=503), "server_error"),
    ("4xx", Fault(kind="status", status=400), "http_error"),
    ("429", Fault(kind="rate_limit", reset_seconds=5), "rate_limited"),
]


def error_counts(scheduler: Scheduler, query: str) -> dict[str, float]:
    return {
        dict(labels)["reason"]: value
        for (name, labels), value in served(scheduler).items()
        if name == "datadog_exporter_poll_errors_total" and ("query", query) in labels
    }


def poll_failures(caplog: pytest.LogCaptureFixture, query: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and getattr(r, "query", None) == query
    ]


@pytest.mark.parametrize(
    ("fault", "reason"), [(f, r) for _, f, r in FAULTS], ids=[i for i, _, _ in FAULTS]
)
async def test_fault_fails_one_poll_cleanly_and_keeps_the_last_good_data(
    polling: Scheduler,
    simulator: Simulator,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    reason: str,
) -> None:
    await polling.add(job("a"), job("b", tags=["client_env:prod"]))
    for name in ("a", "b"):
        await polling.poll_once(("connections", name), deadline(5))
    before = served(polling)
    keys = query_series(before, "a")
    good = {k: v for k, v in before.items() if k in keys}
    assert good

    simulator.set_fault("connections", fault)  # armed until cleared: retries meet it too
    with caplog.at_level(logging.DEBUG, logger="exporter"):
        await polling.poll_once(("connections", "a"), deadline(1.5))
    simulator.clear_faults()

    state = polling.state(("connections", "a"))
    assert state.up is False and state.serving_stale is True
    assert error_counts(polling, "a") == {reason: 1}
    failures = poll_failures(caplog, "a")
    assert len(failures) == 1 and getattr(failures[0], "reason", None) == reason
    assert "\n" not in failures[0].getMessage() + str(getattr(failures[0], "error", ""))
    samples = served(polling)
    assert {k: v for k, v in samples.items() if k in good} == good
    up = ("datadog_exporter_up", frozenset({("collector", "connections"), ("query", "a")}))
    assert samples[up] == 0

    if reason != "rate_limited":  # a 429 holds every query of the endpoint, by design
        await polling.poll_once(("connections", "b"), deadline(5))
        assert polling.state(("connections", "b")).up is True
        assert error_counts(polling, "b") == {}


async def test_connection_refused_counts_as_connection_refused(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with scheduler_against(f"http://127.0.0.1:{port}") as scheduler:
        await scheduler.add(job("a"))
        with caplog.at_level(logging.DEBUG, logger="exporter"):
            await scheduler.poll_once(("connections", "a"), deadline(1.0))
        assert scheduler.state(("connections", "a")).up is False
        assert error_counts(scheduler, "a") == {"connection_refused": 1}
    (failure,) = poll_failures(caplog, "a")
    assert getattr(failure, "error", "") == f"connections: connection refused by 127.0.0.1:{port}"


async def test_metrics_answer_promptly_while_datadog_hangs(simulator: Simulator) -> None:
    simulator.set_fault("connections", Fault(kind="hang"))
    redactor = Redactor()
    exporter = build_exporter(
        parse_config("datadog: {timeout: 5s}\nconnections: [{name: a, interval: 10s}]\n"),
        simulator.url,
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        poll_policy=PollPolicy(startup_spread=0.0),
        environ={},
    )
    await exporter.start()
    try:
        await asyncio.sleep(0.3)  # the first poll is now hanging
        assert simulator.requests_to("connections")
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            for _ in range(5):
                started = loop.time()
                async with session.get(f"http://127.0.0.1:{exporter.port}/metrics") as response:
                    assert response.status == 200
                    assert "datadog_exporter_up" in await response.text()
                assert loop.time() - started < 1.0
    finally:
        await exporter.stop()
