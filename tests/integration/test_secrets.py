"""Keys never leak: not in any log line at debug level, not in errors (even ones that echo
the request), not on /metrics or the landing page, not in a repr. Rotated key files are
picked up without a restart."""

from __future__ import annotations

import io
import os
import socket
import time
from pathlib import Path

import aiohttp

from exporter.app import RunOptions, build_exporter
from exporter.collectors.connections import ConnectionsJob
from exporter.config.schema import ConnectionsQuery, parse_config
from exporter.datadog.client import DatadogClient, RequestFailed
from exporter.datadog.credentials import Credentials, KeySource
from exporter.logs import Redactor
from simulator import Fault, Simulator

from .conftest import API_KEY, APP_KEY, credentials, deadline
from .test_faults import FAULTS

JOB = ConnectionsJob(ConnectionsQuery(name="q", group_by=["client_service"]))


def leaks(text: str, *keys: str) -> list[str]:
    return [key[:6] + "..." for key in keys if key in text]


async def test_no_fault_path_shows_a_key_anywhere(
    simulator: Simulator, debug_log: tuple[io.StringIO, Redactor]
) -> None:
    stream, redactor = debug_log
    exporter = build_exporter(
        parse_config("datadog: {timeout: 1s}\nconnections: [{name: q, interval: 1h}]\n"),
        simulator.url,
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        environ={},
    )
    await exporter.start()
    key = ("connections", "q")
    seen: list[str] = [
        repr(exporter.pool.clients["default"].credentials),
        repr(exporter.pool.clients["default"].credentials.api_key),
    ]
    # Error bodies that echo the request, keys included, as some proxies and APIs do.
    echoes = [
        Fault(kind="status", status=400, detail=f"bad request with DD-API-KEY={API_KEY}"),
        Fault(kind="status", status=403, error_shape="strings", detail=f"app key {APP_KEY}"),
        Fault(kind="wrong_shape", body={"errors": [API_KEY], "data": APP_KEY}),
    ]
    # A 429 holds the endpoint for seconds: its fault comes last.
    rate_limited = [f for _, f, reason in FAULTS if reason == "rate_limited"]
    others = [f for _, f, reason in FAULTS if reason != "rate_limited"]
    assert rate_limited and others

    async def poll_through(fault: Fault) -> None:
        simulator.set_fault("connections", fault)
        try:
            await exporter.pool.clients["default"].fetch(JOB.request(time.time()))
        except RequestFailed as exc:
            seen.extend([str(exc), repr(exc), repr(exc.args)])
        await exporter.scheduler.poll_once(key, deadline(1.5))
        seen.append(str(exporter.scheduler.state(key)))
        simulator.clear_faults()

    try:
        for fault in others + echoes:
            await poll_through(fault)
        simulator.set_keys("rotated-api-key-000000000000", "rotated-app-key-0000000000000")
        await exporter.scheduler.poll_once(key, deadline(1.5))  # 403: wrong keys
        for fault in rate_limited:
            await poll_through(fault)
        async with aiohttp.ClientSession() as session:
            for path in ("/metrics", "/"):
                url = f"http://127.0.0.1:{exporter.port}{path}"
                async with session.get(url) as response:
                    seen.append(await response.text())
    finally:
        await exporter.stop()
    with socket.socket() as probe:  # connection refused, at debug level too
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = DatadogClient(
        f"http://127.0.0.1:{port}",
        credentials=credentials(redactor),
        redactor=redactor,
        timeout=1,
        max_response_size=1 << 20,
    )
    try:
        await refused.fetch(JOB.request(time.time()))
    except RequestFailed as exc:
        seen += [str(exc), repr(exc)]
    finally:
        await refused.close()
    output = stream.getvalue()
    assert "poll failed" in output and "level=debug" in output  # the paths really ran
    assert output.count("poll failed") >= len(FAULTS)
    assert leaks(output, API_KEY, APP_KEY) == []
    assert leaks("\n".join(seen), API_KEY, APP_KEY) == []
    assert "Traceback" not in output


async def test_a_rotated_key_file_is_picked_up_without_restart(
    simulator: Simulator, tmp_path: Path, debug_log: tuple[io.StringIO, Redactor]
) -> None:
    stream, redactor = debug_log
    api_file, app_file = tmp_path / "api_key", tmp_path / "app_key"
    api_file.write_text(API_KEY + "\n")
    app_file.write_text(APP_KEY + "\n")
    creds = Credentials(
        KeySource("DD_API_KEY", path=api_file), KeySource("DD_APP_KEY", path=app_file), redactor
    )
    exporter = build_exporter(
        parse_config("connections: [{name: q, interval: 1h}]\n"),
        simulator.url,
        creds,
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        environ={},
    )
    await exporter.start()
    key = ("connections", "q")
    state = exporter.scheduler.state(key)
    new_api, new_app = "rotated-api-key-" + "7" * 24, "rotated-app-key-" + "8" * 30
    try:
        await exporter.scheduler.poll_once(key, deadline(5))
        assert state.up
        simulator.set_keys(new_api, new_app)  # Datadog now accepts only the new keys
        await exporter.scheduler.poll_once(key, deadline(5))
        assert not state.up and "403" in (state.last_error or "")
        # The Secret is remounted: new content, new modification time.
        api_file.write_text(new_api + "\n")
        app_file.write_text(new_app + "\n")
        later = time.time() + 5
        for path in (api_file, app_file):
            os.utime(path, (later, later))
        await exporter.scheduler.poll_once(key, deadline(5))
        assert state.up, state.last_error
        assert [r.status for r in simulator.requests_to("connections")] == [200, 403, 200]
    finally:
        await exporter.stop()
    assert leaks(stream.getvalue(), API_KEY, APP_KEY, new_api, new_app) == []
