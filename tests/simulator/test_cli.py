"""`python -m simulator` prints its URL, serves, and exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp
import pytest

from .support import CONNECTIONS, DNS

KEYS = {"DD-API-KEY": "cli-api", "DD-APPLICATION-KEY": "cli-app"}


async def _spawn(*extra: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "--listen",
        "127.0.0.1:0",
        "--api-key",
        "cli-api",
        "--app-key",
        "cli-app",
        "--seed",
        "7",
        "--universe",
        "120",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
    assert line.startswith("listening on http://127.0.0.1:"), line
    return process, line.removeprefix("listening on ").strip()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_cli_serves_with_flags_and_exits_zero_on_signal(signum: int) -> None:
    process, url = await _spawn(
        "--fault",
        "connections:status:500",
        "--scenario",
        "retransmit_storm:client_service=checkout,server_service=payments-db",
    )
    try:
        async with aiohttp.ClientSession(base_url=url, headers=KEYS) as http:
            async with http.get(CONNECTIONS) as response:
                assert response.status == 500
            async with http.get(DNS) as response:
                assert response.status == 200
            async with http.get(DNS, headers={"DD-API-KEY": "sim-api-key"}) as response:
                assert response.status == 403
            async with http.get("/_simulator/requests") as response:
                assert len((await response.json())["requests"]) == 3
    finally:
        process.send_signal(signum)
        returncode = await asyncio.wait_for(process.wait(), timeout=10)
    assert returncode == 0


async def test_cli_rejects_a_bad_fault_spec() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "--listen",
        "127.0.0.1:0",
        "--fault",
        "connections:explode",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 2
    assert b"explode" in stderr
