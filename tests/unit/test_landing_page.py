"""The landing page tells ages by the injected clock, as everything else that measures age."""

from __future__ import annotations

from exporter.scheduler.state import QueryState
from exporter.selfmetrics import SelfMetrics
from exporter.server import ServerContext, landing_page
from exporter.snapshot import SnapshotStore
from tests.clocks import HandClock


def test_the_age_of_the_last_success_is_read_from_the_injected_clock() -> None:
    clock = HandClock()
    state = QueryState("connections", "pairs", "connections", 60.0, 300.0, up=True)
    state.last_success = clock.now - 90
    context = ServerContext(SnapshotStore(), SelfMetrics(), lambda: [state], clock=clock)
    assert "<td>1m30s ago</td>" in landing_page(context)
    clock.now += 3600
    assert "<td>1h1m30s ago</td>" in landing_page(context)
