"""The per-query self-metrics: one sample per query and family, values and labels as the
scheduler holds them when it last said the query changed, served from bytes kept between
scrapes, and nothing left of a query that is gone."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from exporter.exposition import Family, RenderedFamily
from exporter.exposition import Rendered as RenderedPoll
from exporter.gzipjoin import gzip_member
from exporter.scheduler import QueryState
from exporter.selfmetrics import (
    ANSWER_ROWS,
    DROPPED_ROWS,
    DURATION,
    GROUP_BY_UNRESOLVED,
    INTERVAL,
    INVALID_VALUES,
    LAST_SUCCESS,
    LOOP_RESTARTS,
    PER_QUERY_FAMILIES,
    POLL_ERRORS,
    SERIES,
    STALE,
    UP,
    WINDOW,
    QueryLines,
    SelfMetrics,
)
from exporter.snapshot import SnapshotStore, prepare_snapshot
from tests.helpers import parse_metrics, require_tool


def shown(*states: QueryState) -> SelfMetrics:
    metrics = SelfMetrics()
    for state in states:
        metrics.show_query(state)
    return metrics


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
    metrics = shown(*states)
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
        ("datadog_exporter_poll_loop_restarts_total", plain): 0.0,
        ("datadog_exporter_dropped_rows_total", plain): 0.0,
        ("datadog_exporter_invalid_values_total", plain): 0.0,
        ("datadog_exporter_up", odd): 0.0,
        ("datadog_exporter_series", odd): 0.0,
        ("datadog_exporter_interval_seconds", odd): 30.0,
        ("datadog_exporter_serving_stale", odd): 1.0,
        ("datadog_exporter_poll_loop_restarts_total", odd): 0.0,
        ("datadog_exporter_dropped_rows_total", odd): 0.0,
        ("datadog_exporter_invalid_values_total", odd): 0.0,
    }
    per_query = {key: value for key, value in samples.items() if "query" in dict(key[1])}
    assert per_query == expected

    metrics.forget_query(("cases", 'odd "name"\\with\nnewline'))
    names = {dict(labels).get("query") for _, labels in parse_metrics(metrics.render().decode())}
    assert names == {None, "plain"}


def test_answer_rows_and_one_unresolved_sample_per_group_by_field() -> None:
    state = QueryState("dns", "d", "dns", 60.0, 300.0, up=True, rows=7)
    state.group_by_unresolved = (("client_service", False), ('dns"query', True))
    waiting = QueryState("cases", "new", "cases", 60.0, None)
    samples = parse_metrics(shown(state, waiting).render().decode())
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


def states_in_every_shape() -> list[QueryState]:
    """Queries as the scheduler holds them: up, down and serving stale data, late, dropped
    after stale_after, waiting for their first poll, empty, with odd names and fields."""
    up = QueryState("connections", "up", "connections", 60.0, 300.0, up=True, series=12)
    up.last_success, up.last_duration, up.rows = 1_700_000_000.5, 0.25, 6
    up.group_by_unresolved = (("client_service", False), ("server_service", False))
    stale = QueryState("dns", "stale", "dns", 30.0, 120.0, series=4, serving_stale=True)
    stale.last_success, stale.last_duration, stale.rows = 1_700_000_100.0, 9.5, 2
    stale.group_by_unresolved = (('bad"field', True), ("dns_query", False))
    late = QueryState("cases", "late", "cases", 3600.0, None, late=True, series=3, rows=3)
    late.last_success, late.last_duration, late.serving_stale = 1.0, 120.0, True
    dropped = QueryState("audience", "dropped", "audience", 600.0, None, last_duration=0.1)
    dropped.last_success, dropped.rows = 1_600_000_000.0, 0
    waiting = QueryState("connections", 'odd "name"\\with\nnewline', "connections", 5.0, 60.0)
    empty = QueryState("connections", "empty", "connections", 60.0, 300.0, up=True, rows=0)
    empty.last_success, empty.last_duration = 1_700_000_200.0, 0.0
    return [up, stale, late, dropped, waiting, empty]


Key = tuple[str, str]
# What the I/O shells say happened to states_in_every_shape(): poll errors by reason, losses.
ERRORS: dict[Key, dict[str, int]] = {
    ("dns", "stale"): {"timeout": 2, "server_error": 1},
    ("cases", "late"): {"rate_limited": 1},
}
LOSSES: dict[Family, dict[Key, int]] = {
    DROPPED_ROWS: {("connections", "up"): 250},
    INVALID_VALUES: {("connections", "up"): 3},
    LOOP_RESTARTS: {("audience", "dropped"): 1},
}


def count(metrics: SelfMetrics) -> None:
    for key, by_reason in ERRORS.items():
        for reason, times in by_reason.items():
            for _ in range(times):
                metrics.poll_failed(key, reason)
    for key, rows in LOSSES[DROPPED_ROWS].items():
        metrics.rows_dropped(key, rows)
    for key, values in LOSSES[INVALID_VALUES].items():
        metrics.values_left_out(key, values)
    for key, times in LOSSES[LOOP_RESTARTS].items():
        for _ in range(times):
            metrics.loop_restarted(key)


class _StateCollector(Collector):
    """The per-query state families through prometheus_client: another way to serve them,
    to hold the text rendered on change to."""

    def __init__(self, states: list[QueryState]) -> None:
        self.states = states

    def collect(self) -> Iterator[Metric]:
        def gauge(family: Family) -> GaugeMetricFamily:
            return GaugeMetricFamily(family.name, family.help, labels=list(family.labels))

        families = {
            family: gauge(family)
            for family in (UP, LAST_SUCCESS, DURATION, SERIES, WINDOW, INTERVAL, STALE)
        }
        rows, unresolved = gauge(ANSWER_ROWS), gauge(GROUP_BY_UNRESOLVED)
        for state in self.states:
            key = [state.collector, state.name]
            families[UP].add_metric(key, 1.0 if state.up else 0.0)
            if state.last_success is not None:
                families[LAST_SUCCESS].add_metric(key, state.last_success)
            if state.last_duration is not None:
                families[DURATION].add_metric(key, state.last_duration)
            families[SERIES].add_metric(key, state.series)
            if state.window is not None:
                families[WINDOW].add_metric(key, state.window)
            families[INTERVAL].add_metric(key, state.interval)
            families[STALE].add_metric(key, 1.0 if state.serving_stale else 0.0)
            if state.rows is not None:
                rows.add_metric(key, state.rows)
            for field, bad in state.group_by_unresolved:
                unresolved.add_metric([*key, field], 1.0 if bad else 0.0)
        yield from families.values()
        yield rows
        yield unresolved


def through_prometheus_client(states: list[QueryState]) -> str:
    registry = CollectorRegistry()
    registry.register(_StateCollector(states))
    errors = Counter(POLL_ERRORS.name, POLL_ERRORS.help, POLL_ERRORS.labels, registry=registry)
    for (collector, name), by_reason in ERRORS.items():
        for reason, times in by_reason.items():
            errors.labels(collector, name, reason).inc(times)
    for family, by_key in LOSSES.items():
        loss = Counter(family.name, family.help, family.labels, registry=registry)
        for state in states:  # shown at 0 from a query's start
            loss.labels(state.collector, state.name)
        for (collector, name), value in by_key.items():
            loss.labels(collector, name).inc(value)
    return generate_latest(registry).decode()


Described = dict[str, tuple[str, str, set[tuple[str, frozenset[tuple[str, str]], float]]]]


def families_of(text: str) -> Described:
    """name -> (HELP, TYPE, every sample) of the per-query families in ``text``."""
    return {
        family.name: (
            family.documentation,
            family.type,
            {(s.name, frozenset(s.labels.items()), s.value) for s in family.samples},
        )
        for family in text_string_to_metric_families(text)
        if family.name in PER_QUERY_NAMES
    }


PER_QUERY_NAMES = {family.name for family in PER_QUERY_FAMILIES}


def test_per_query_samples_rendered_on_change_are_what_rendering_per_scrape_served() -> None:
    """For queries in every state, the self-metrics kept between scrapes parse to the same
    families (HELP, TYPE, every sample) as rendering them at the scrape through
    prometheus_client gives; no series twice, and promtool finds nothing to say."""
    states = states_in_every_shape()
    metrics = shown(*states)
    count(metrics)
    text = metrics.render().decode()
    kept = families_of(text)
    assert kept == families_of(through_prometheus_client(states))
    assert set(kept) == PER_QUERY_NAMES
    assert all(samples for _, _, samples in kept.values())  # every family has some
    parse_metrics(text)  # fails on a duplicate series
    lint = subprocess.run(
        [require_tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert lint.returncode == 0 and not lint.stderr.strip(), lint.stderr


def test_a_state_change_is_served_once_the_query_is_said_to_have_changed() -> None:
    """What a scrape serves is what the query was when the scheduler last said it changed:
    scrapes in between read nothing of it."""
    state = QueryState("connections", "q", "connections", 60.0, 300.0, up=True, series=5)
    metrics = shown(state)
    key = frozenset({("collector", "connections"), ("query", "q")})
    assert parse_metrics(metrics.render().decode())[("datadog_exporter_up", key)] == 1
    state.up, state.serving_stale = False, True
    assert parse_metrics(metrics.render().decode())[("datadog_exporter_up", key)] == 1
    metrics.query_changed(("connections", "q"))
    samples = parse_metrics(metrics.render().decode())
    assert samples[("datadog_exporter_up", key)] == 0
    assert samples[("datadog_exporter_serving_stale", key)] == 1


def test_a_forgotten_query_vanishes_and_what_is_said_of_it_later_counts_nothing() -> None:
    """A removed query's samples vanish, counters and all; a poll of it ending after the
    reload (or a query never shown) brings nothing back."""
    gone = QueryState("connections", "gone", "connections", 60.0, 300.0, up=True)
    kept = QueryState("connections", "kept", "connections", 60.0, 300.0, up=True)
    metrics = shown(gone, kept)
    for key in (("connections", "gone"), ("connections", "kept")):
        metrics.rows_dropped(key, 3)
        metrics.poll_failed(key, "timeout")
    metrics.forget_query(("connections", "gone"))
    metrics.poll_failed(("connections", "gone"), "timeout")
    metrics.values_left_out(("connections", "gone"), 1)
    metrics.query_changed(("connections", "gone"))
    metrics.poll_failed(("connections", "never"), "timeout")
    queries = {dict(labels).get("query") for _, labels in parse_metrics(metrics.render().decode())}
    assert queries == {None, "kept"}
    # Shown again (a changed query is removed and added), it starts from 0.
    metrics.show_query(gone)
    samples = parse_metrics(metrics.render().decode())
    labels = frozenset({("collector", "connections"), ("query", "gone")})
    assert samples[("datadog_exporter_dropped_rows_total", labels)] == 0
    assert ("datadog_exporter_poll_errors_total", labels | {("reason", "timeout")}) not in samples


def test_lines_keep_their_order_and_content_through_removals_and_closing_up() -> None:
    """Queries stay in the order they were first shown; removing most of them (which closes
    up the empty slots) serves exactly the rest, header first, compressed as the text."""
    family = Family("datadog_exporter_up", "h")
    lines = QueryLines([family], block_queries=2)
    for index in range(10):
        lines.put(("c", f"q{index}"), [f"up{{q={index}}} 1\n".encode()])
    for index in (0, 2, 3, 5, 6, 8):
        lines.remove(("c", f"q{index}"))
    lines.put(("c", "q9"), [b"up{q=9} 0\n"])
    view = lines.view()
    text = b"".join(view.texts)
    assert text == family.header() + b"up{q=1} 1\nup{q=4} 1\nup{q=7} 1\nup{q=9} 0\n"
    assert len(lines) == 4
    assert gzip.decompress(b"".join(gzip_member(view.deflated, view.total))) == text
    assert lines.view() is view  # nothing changed: the same bytes, nothing joined again


def test_a_gzip_scrape_joins_the_kept_pieces_into_one_member_equal_to_the_plain_text() -> None:
    """/metrics with gzip: the data, the per-query self-metrics compressed when they changed
    and the process-wide ones compressed now make one gzip member whose text is the plain
    scrape's, byte for byte, and whose length is announced right."""
    store = SnapshotStore()
    data = RenderedPoll((RenderedFamily(Family("datadog_x", "x"), b'datadog_x{a="1"} 2\n'),), 1)
    store.publish(prepare_snapshot(("connections", "q"), data, 1.0))
    metrics = shown(*states_in_every_shape())
    count(metrics)
    tail = metrics.for_scrape()
    plain = store.body.plain(tail.process, tail.per_query)
    zipped = store.body.gzip(tail.process, tail.per_query)
    text, member = b"".join(plain.parts), b"".join(zipped.parts)
    assert (len(text), len(member)) == (plain.size, zipped.size)
    assert gzip.decompress(member) == text
    assert text.startswith(b"# HELP datadog_x x\n") and text.endswith(tail.process)
    assert b"".join(tail.per_query.texts) in text


def test_a_change_recompresses_one_block_of_the_one_family_it_changed() -> None:
    """A query's change costs its own block, not every query's: of 64 queries in blocks of
    4, changing one query's line of one family leaves every other piece as it was."""
    lines = QueryLines([Family("a", "h"), Family("b", "h")], block_queries=4)
    for index in range(64):
        lines.put(("c", f"q{index}"), [f"a{index} 1\n".encode(), f"b{index} 1\n".encode()])
    before = lines.view()
    lines.put(("c", "q9"), [b"a9 2\n", b"b9 1\n"])
    after = lines.view()
    assert len(after.deflated) == len(before.deflated) == 2 + 2 * 16
    changed = [
        i
        for i, (old, new) in enumerate(zip(before.deflated, after.deflated, strict=True))
        if old is not new
    ]
    assert changed == [3]  # header a, blocks 0 and 1 of a, then the block holding q9
    assert after.texts[3] == b"a8 1\na9 2\na10 1\na11 1\n"
