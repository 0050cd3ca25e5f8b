"""The landing page tells ages by the injected clock, as everything else that measures age,
and on its monotonic scale: a step of the wall clock changes no age."""

from __future__ import annotations

from exporter.scheduler.state import QueryState
from exporter.selfmetrics import SelfMetrics
from exporter.server import ServerContext, landing_page
from exporter.snapshot import SnapshotStore
from tests.clocks import HandClock, SteppedClock


def test_the_age_of_the_last_success_is_read_from_the_injected_clock() -> None:
    clock = HandClock()
    state = QueryState("connections", "pairs", "connections", 60.0, 300.0, up=True)
    state.last_success = clock.now - 90
    state.last_success_monotonic = clock.monotonic() - 90
    context = ServerContext(SnapshotStore(), SelfMetrics(), lambda: [state], clock=clock)
    assert "<td>1m30s ago</td>" in landing_page(context)
    clock.advance(3600)
    assert "<td>1h1m30s ago</td>" in landing_page(context)


def test_a_wall_clock_step_either_way_changes_no_age() -> None:
    clock = SteppedClock()
    state = QueryState("connections", "pairs", "connections", 60.0, 300.0, up=True)
    state.last_success = clock.wall()
    state.last_success_monotonic = clock.monotonic()
    context = ServerContext(SnapshotStore(), SelfMetrics(), lambda: [state], clock=clock)
    clock.advance(90)
    for step in (2 * 3600, -4 * 3600):
        clock.step_wall(step)
        assert "<td>1m30s ago</td>" in landing_page(context)
