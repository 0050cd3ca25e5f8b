"""Listening on several addresses: all or nothing."""

from __future__ import annotations

import asyncio
import socket

import pytest

from exporter.app import RunOptions, build_exporter, serve_until_signalled
from exporter.config.schema import parse_config
from exporter.listen import ListenError
from exporter.logs import Redactor
from simulator import Simulator

from .conftest import credentials


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def can_bind(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_a_failing_second_address_closes_the_first_and_polls_nothing(
    simulator: Simulator,
) -> None:
    first = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        redactor = Redactor()
        exporter = build_exporter(
            parse_config("connections: [{name: a, interval: 1h}]"),
            simulator.url,
            credentials(redactor),
            redactor,
            RunOptions([f"127.0.0.1:{first}", f"127.0.0.1:{busy}"], "/metrics"),
            environ={},
        )
        with pytest.raises(ListenError, match=f"127.0.0.1:{busy}: cannot listen: Address already"):
            await asyncio.wait_for(serve_until_signalled(exporter), timeout=10)
    assert can_bind(first), "the first address is closed again"
    assert exporter.scheduler.query_states() == [], "no query was started"
    assert not exporter.ready.is_set()
    assert simulator.request_log == []
