"""A poll that overruns its interval skips the ticks it missed instead of catching up
(docs/operations.md, "How polling, windows and staleness work"): after one slow answer the
query polls on at its interval, never several times back to back."""

from __future__ import annotations

import asyncio
import itertools

from exporter.app import RunOptions, build_exporter
from exporter.config.schema import parse_config
from exporter.logs import Redactor
from simulator import Fault, Simulator

from .conftest import credentials

INTERVAL = 1.0
SLOW_ANSWER = 3.5  # the first poll takes three and a half intervals
POLLS = 5


async def test_an_overrunning_poll_skips_the_missed_ticks(simulator: Simulator) -> None:
    simulator.set_fault("connections", Fault(kind="latency", seconds=SLOW_ANSWER, count=1))
    redactor = Redactor()
    exporter = build_exporter(
        parse_config("datadog: {timeout: 10s}\nconnections: [{name: q, interval: 1s}]\n"),
        simulator.url,
        credentials(redactor),
        redactor,
        RunOptions("127.0.0.1:0", "/metrics"),
        environ={},
    )
    await exporter.start()
    try:
        for _ in range(200):  # at most 20 s; about 1 + 3.5 + 4 intervals when all is well
            if len(simulator.requests_to("connections")) >= POLLS:
                break
            await asyncio.sleep(0.1)
    finally:
        await exporter.stop()
    arrivals = [record.time for record in simulator.requests_to("connections")]
    assert len(arrivals) >= POLLS, arrivals
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # The slow poll holds its loop: nothing else is sent while it is in flight.
    assert gaps[0] >= SLOW_ANSWER - 0.1, gaps
    # The three ticks it missed are not fired back to back afterwards.
    assert all(gap >= INTERVAL / 2 for gap in gaps[1:]), gaps
    assert all(record.status == 200 for record in simulator.requests_to("connections"))
