"""The landing page tells ages by the injected clock, as everything else that measures age,
and on its monotonic scale: a step of the wall clock changes no age. It shows where requests
go, what each query asks, links the docs and marks demo data."""

from __future__ import annotations

from exporter.config.schema import parse_config
from exporter.datadog.pool import Route
from exporter.scheduler.state import QueryState
from exporter.selfmetrics import SelfMetrics
from exporter.server import Catalog, ServerParts, describe_queries, landing_page
from exporter.snapshot import SnapshotStore
from tests.clocks import HandClock, SteppedClock


def test_the_age_of_the_last_success_is_read_from_the_injected_clock() -> None:
    clock = HandClock()
    state = QueryState("connections", "pairs", "connections", 60.0, 300.0, up=True)
    state.last_success = clock.now - 90
    state.last_success_monotonic = clock.monotonic() - 90
    context = ServerParts(SnapshotStore(), SelfMetrics(), lambda: [state], clock=clock)
    assert "<td>1m30s ago</td>" in landing_page(context)
    clock.advance(3600)
    assert "<td>1h1m30s ago</td>" in landing_page(context)


def test_the_page_shows_where_requests_go_and_what_each_query_asks() -> None:
    config = parse_config(
        "connections:\n"
        "  - {name: pairs, group_by: [client_service, server_service], tags: ['env:prod'],"
        " window: 10m, delay: 2m}\n"
        "cases:\n  - {name: open, group_by: [status], query_filter: 'status:OPEN'}\n"
    )
    states = [
        QueryState("connections", "pairs", "connections", 60.0, 600.0),
        QueryState("cases", "open", "cases", 60.0, None),
    ]
    route = Route("default", "https://api.datadoghq.eu", "DD_SITE", "via proxy http://p:3128")
    context = ServerParts(
        SnapshotStore(),
        SelfMetrics(),
        lambda: states,
        catalog=lambda: Catalog(routes=(route,), details=describe_queries(config)),
        docs_url="docs/index.md",
    )
    page = landing_page(context)
    assert (
        "<td>default</td><td>https://api.datadoghq.eu</td><td>DD_SITE</td>"
        "<td>via proxy http://p:3128</td>"
    ) in page
    assert (
        "<td>1m</td><td>10m</td><td>2m</td><td>client_service, server_service</td>"
        "<td>tags: env:prod</td>"
    ) in page
    assert "<td>1m</td><td></td><td></td><td>status</td><td>status:OPEN</td>" in page
    assert '<a href="docs/index.md">Documentation</a>' in page
    assert "Demo data" not in page


def test_demo_mode_marks_the_page_as_demo_data() -> None:
    context = ServerParts(SnapshotStore(), SelfMetrics(), list, demo=True)
    assert "<strong>Demo data</strong>" in landing_page(context)


def test_a_wall_clock_step_either_way_changes_no_age() -> None:
    clock = SteppedClock()
    state = QueryState("connections", "pairs", "connections", 60.0, 300.0, up=True)
    state.last_success = clock.wall()
    state.last_success_monotonic = clock.monotonic()
    context = ServerParts(SnapshotStore(), SelfMetrics(), lambda: [state], clock=clock)
    clock.advance(90)
    for step in (2 * 3600, -4 * 3600):
        clock.step_wall(step)
        assert "<td>1m30s ago</td>" in landing_page(context)
