"""The per-query self-metrics: one sample per query and family, values and labels as the
scheduler holds them, and nothing left of a query that is gone."""

from __future__ import annotations

import time

from exporter.scheduler import QueryState
from exporter.selfmetrics import SelfMetrics
from tests.helpers import parse_metrics


def test_every_query_state_is_served_with_escaped_labels_and_absent_values_left_out() -> None:
    states = [
        QueryState(
            "connections",
            "plain",
            "connections",
            60.0,
            300.0,
            up=True,
            series=42,
            last_success=1_700_000_000.25,
            last_duration=0.5,
        ),
        QueryState("cases", 'odd "name"\\with\nnewline', "cases", 30.0, None, serving_stale=True),
    ]
    metrics = SelfMetrics()
    metrics.watch(lambda: states, list)
    samples = parse_metrics(metrics.render().decode())
    plain = frozenset({("collector", "connections"), ("query", "plain")})
    odd = frozenset({("collector", "cases"), ("query", 'odd "name"\\with\nnewline')})
    expected = {
        ("datadog_exporter_up", plain): 1.0,
        ("datadog_exporter_last_success_timestamp_seconds", plain): 1_700_000_000.25,
        ("datadog_exporter_poll_duration_seconds", plain): 0.5,
        ("datadog_exporter_series", plain): 42.0,
        ("datadog_exporter_window_seconds", plain): 300.0,
        ("datadog_exporter_interval_seconds", plain): 60.0,
        ("datadog_exporter_serving_stale", plain): 0.0,
        ("datadog_exporter_up", odd): 0.0,
        ("datadog_exporter_series", odd): 0.0,
        ("datadog_exporter_interval_seconds", odd): 30.0,
        ("datadog_exporter_serving_stale", odd): 1.0,
    }
    per_query = {
        key: value
        for key, value in samples.items()
        if ("query", "plain") in key[1] or key[1] == odd
    }
    assert per_query == expected

    states.pop()
    names = {dict(labels).get("query") for _, labels in parse_metrics(metrics.render().decode())}
    assert 'odd "name"\\with\nnewline' not in names


def test_answer_rows_and_one_unresolved_sample_per_group_by_field() -> None:
    state = QueryState("dns", "d", "dns", 60.0, 300.0, up=True, rows=7)
    state.group_by_unresolved = (("client_service", False), ('dns"query', True))
    waiting = QueryState("cases", "new", "cases", 60.0, None)
    metrics = SelfMetrics()
    metrics.watch(lambda: [state, waiting], list)
    samples = parse_metrics(metrics.render().decode())
    query = frozenset({("collector", "dns"), ("query", "d")})
    assert samples[("datadog_exporter_answer_rows", query)] == 7
    unresolved = {
        dict(labels)["field"]: value
        for (name, labels), value in samples.items()
        if name == "datadog_exporter_group_by_unresolved"
    }
    assert unresolved == {"client_service": 0, 'dns"query': 1}
    # Before its first successful poll a query has no rows to tell.
    assert not any(
        name == "datadog_exporter_answer_rows" and ("query", "new") in labels
        for name, labels in samples
    )


def test_self_metrics_of_two_thousand_queries_cost_little_cpu_per_scrape() -> None:
    """Every scrape renders them; formatting each sample through prometheus_client took
    several times this bound, a multiple of copying the data series of those queries."""
    states = [
        QueryState(
            "connections",
            f"q{index:04d}",
            "connections",
            60.0,
            300.0,
            up=True,
            series=300,
            last_success=1_700_000_000.5,
            last_duration=0.01,
        )
        for index in range(2000)
    ]
    metrics = SelfMetrics()
    metrics.watch(lambda: states, list)
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        metrics.render()
        best = min(best, time.thread_time() - started)
    assert best < 0.04, best
