"""Backfill output is OpenMetrics: timestamped live samples, grouped, headers escaped, # EOF."""

from __future__ import annotations

import io

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.backfill.openmetrics import (
    FamilyWriter,
    header,
    sample_line,
    split_samples,
    target_labels,
)
from exporter.backfill.source import WINDOW_FAMILY, render, select_queries
from exporter.config.schema import parse_config
from exporter.exposition import Family
from simulator import Simulator

CONFIG = parse_config(
    """
connections:
  - name: pairs
    group_by: [client_service, server_service]
    limit: 7500
dns:
  - name: names
"""
)


def test_header_escapes_quotes_as_openmetrics_requires() -> None:
    family = Family("x_total_y", 'say "hi" \\ now\nplease')
    assert header(family) == (
        b'# HELP x_total_y say \\"hi\\" \\\\ now\\nplease\n# TYPE x_total_y gauge\n'
    )


def test_target_labels_go_first_inside_the_braces() -> None:
    targets = target_labels([("instance", 'h"1:80'), ("job", "j")])
    samples = b'm{query="q",a="x y"} 1\nm{query="q",a="} 2"} 2\n'
    assert list(split_samples("m", samples, targets)) == [
        (b'{instance="h\\"1:80",job="j",query="q",a="x y"}', b"1"),
        (b'{instance="h\\"1:80",job="j",query="q",a="} 2"}', b"2"),
    ]
    assert list(split_samples("m", samples)) == [
        (b'{query="q",a="x y"}', b"1"),
        (b'{query="q",a="} 2"}', b"2"),
    ]


def _expose(windows: dict[int, bytes], queries: int) -> str:
    """Windows of the simulator rendered and written as the journal orders them."""
    selection = select_queries(CONFIG, [])
    rows: list[tuple[str, bytes, int, bytes]] = []
    headers: dict[str, bytes] = {}
    sim = Simulator()
    for query in selection.queries[:queries]:
        for t in windows:
            body = sim.answer(query.collector, query.job.request(t).params)  # type: ignore[arg-type]
            window = render(query, body, target_labels([("job", "j")]))
            headers.update(window.headers)
            rows += [(family, labels, t, value) for family, labels, value in window.samples]
    out = io.BytesIO()
    writer = FamilyWriter(out, headers)
    for row in sorted(rows):
        writer.write(*row)
    writer.close()
    return out.getvalue().decode()


def test_rendered_windows_parse_as_openmetrics_with_every_sample_timestamped() -> None:
    text = _expose({1_714_521_600: b"", 1_714_521_900: b""}, queries=2)
    assert text.endswith("# EOF\n")
    families = list(text_string_to_metric_families(text))  # raises on any format error
    names = [family.name for family in families]
    assert len(names) == len(set(names)), "a family appears once"
    assert WINDOW_FAMILY.name in names and "datadog_cnm_tcp_rtt_seconds" in names
    samples = [s for family in families for s in family.samples]
    assert samples and all(float(s.timestamp) in (1_714_521_600, 1_714_521_900) for s in samples)
    assert all(s.labels["job"] == "j" for s in samples)
    values = {s.labels.get("client_service") for s in samples}
    assert {'legacy "quoted" svc', "multi\nline", "東京"} <= values


def test_window_seconds_is_written_at_every_window() -> None:
    text = _expose({1_714_521_600: b"", 1_714_521_900: b""}, queries=1)
    [family] = [f for f in text_string_to_metric_families(text) if f.name == WINDOW_FAMILY.name]
    assert [(s.labels, s.value, float(s.timestamp)) for s in family.samples] == [
        ({"job": "j", "collector": "connections", "query": "pairs"}, 300.0, float(t))
        for t in (1_714_521_600, 1_714_521_900)
    ]


def test_a_writer_without_rows_still_ends_the_exposition() -> None:
    out = io.BytesIO()
    FamilyWriter(out, {}).close()
    assert out.getvalue() == b"# EOF\n"
    assert sample_line(b"m", b'{a="b"}', b"1.5", 7) == b'm{a="b"} 1.5 7\n'


@pytest.mark.parametrize("collector", ["connections", "dns"])
def test_backfilled_labels_and_values_are_the_live_ones(collector: str) -> None:
    """Without target labels a window renders exactly the lines the live exporter serves."""
    [query] = [q for q in select_queries(CONFIG, []).queries if q.collector == collector]
    body = Simulator().answer(query.collector, query.job.request(1_714_521_600).params)  # type: ignore[arg-type]
    live = {
        (item.family.name, labels, value)
        for item in query.job.render(query.job.decode(body)).families
        for labels, value in split_samples(item.family.name, item.samples)
    }
    backfilled = {
        (f, labels, value)
        for f, labels, value in render(query, body, b"").samples
        if f != WINDOW_FAMILY.name
    }
    assert backfilled == live and live
