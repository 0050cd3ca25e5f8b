"""DNS answers (lists of key/value pairs) become the documented series; bad bodies a DecodeError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.collectors.dns import FAMILIES, DnsJob
from exporter.collectors.protocol import DecodeError
from exporter.config.schema import DnsQuery
from tests.helpers import parse_metrics, render_body, rendered_text
from tests.unit.collectors.support import UNPARSABLE_BODIES, json_values, renders_or_fails_cleanly

JOB = DnsJob(DnsQuery(name="by_client", group_by=["client_service", "network.dns_query"]))
KNOWN = {
    "dns_total_requests": "datadog_dns_requests",
    "dns_failures": "datadog_dns_failures",
    "dns_successful_responses": "datadog_dns_successful_responses",
    "dns_failed_responses": "datadog_dns_failed_responses",
    "dns_timeouts": "datadog_dns_timeouts",
    "dns_responses.nxdomain": "datadog_dns_nxdomain_responses",
    "dns_responses.servfail": "datadog_dns_servfail_responses",
    "dns_responses.other": "datadog_dns_other_responses",
    "dns_success_latency_percentile": "datadog_dns_success_latency_percentile",
    "dns_failure_latency_percentile": "datadog_dns_failure_latency_percentile",
}


def row(groups: list[tuple[str, str]] | None, **metrics: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "metrics": [{"key": key, "value": value} for key, value in metrics.items()]
    }
    if groups is not None:
        attributes["group_bys"] = [{"key": key, "value": value} for key, value in groups]
    return {"id": "x", "type": "aggregated_dns", "attributes": attributes}


def served(
    job: DnsJob, *rows: dict[str, Any]
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_metrics(render(job, *rows))


def render(job: DnsJob, *rows: dict[str, Any]) -> str:
    return rendered_text(render_body(job, json.dumps({"data": list(rows)}).encode()))


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


WEB_DB = [("client_service", "web"), ("network.dns_query", "db.internal")]
WEB_DB_LABELS = labels(query="by_client", client_service="web", network_dns_query="db.internal")


def test_every_documented_key_maps_to_its_metric() -> None:
    values = {key: index + 1 for index, key in enumerate(KNOWN)}
    got = served(JOB, row(WEB_DB, **values))
    assert got == {(KNOWN[key], WEB_DB_LABELS): value for key, value in values.items()}
    assert len(FAMILIES) == 10


def test_latency_help_says_unit_and_percentile_are_undocumented() -> None:
    text = render(JOB, row(WEB_DB, dns_success_latency_percentile=12))
    (help_line,) = [line for line in text.splitlines() if line.startswith("# HELP")]
    assert "datadog_dns_success_latency_percentile" in help_line
    assert "does not document its unit" in help_line


def test_missing_metric_is_absent_not_zero() -> None:
    got = served(JOB, row(WEB_DB, dns_timeouts=0))
    assert got == {("datadog_dns_timeouts", WEB_DB_LABELS): 0}


def test_unknown_key_is_exported_under_a_sanitized_name() -> None:
    got = served(JOB, row(WEB_DB, **{"dns_responses.refused": 4, "dns_total_requests": 9}))
    assert got[("datadog_dns_responses_refused", WEB_DB_LABELS)] == 4
    assert got[("datadog_dns_requests", WEB_DB_LABELS)] == 9


def test_unknown_key_never_clashes_with_a_documented_family() -> None:
    # "dns_requests" would naively become datadog_dns_requests, which dns_total_requests owns.
    text = render(
        JOB,
        row(WEB_DB, dns_requests=1, dns_total_requests=2, **{"requests": 3, "dns_requests!": 4}),
    )
    got = parse_metrics(text)
    assert got[("datadog_dns_requests", WEB_DB_LABELS)] == 2
    unknown = {name: value for (name, _), value in got.items() if name != "datadog_dns_requests"}
    assert sorted(unknown.values()) == [1, 3, 4]
    assert len(unknown) == 3 and all(name.startswith("datadog_dns_requests_") for name in unknown)
    assert text.count("# HELP datadog_dns_requests ") == 1
    assert "not documented" in text


def test_unknown_names_do_not_depend_on_row_order() -> None:
    first = row(WEB_DB, **{"a.b": 1, "a_b": 2})
    second = row(WEB_DB, **{"a_b": 2, "a.b": 1})
    assert render(JOB, first) == render(JOB, second)


def test_repeated_group_key_joins_values_in_order() -> None:
    groups = [("client_service", "b"), ("client_service", "a"), ("network.dns_query", "q")]
    ((_, got),) = served(JOB, row(groups, dns_timeouts=1))
    assert dict(got)["client_service"] == "b,a"


def test_key_not_asked_for_is_ignored_and_duplicate_label_sets_keep_the_first() -> None:
    extra_a = [*WEB_DB, ("server_service", "coredns")]
    extra_b = [*WEB_DB, ("server_service", "other")]
    got = served(JOB, row(extra_a, dns_timeouts=1), row(extra_b, dns_timeouts=2))
    assert got == {("datadog_dns_timeouts", WEB_DB_LABELS): 1}


def test_server_ungrouped_is_sent_but_not_a_label() -> None:
    job = DnsJob(DnsQuery(name="q", group_by=["network.dns_query", "server_ungrouped"]))
    assert job.request(now=1000).params["group_by"] == "network.dns_query,server_ungrouped"
    got = served(job, row([("network.dns_query", "a")], dns_timeouts=1))
    assert got == {("datadog_dns_timeouts", labels(query="q", network_dns_query="a")): 1}


def test_requested_field_missing_from_a_row_gives_no_label() -> None:
    got = served(JOB, row([("network.dns_query", "q")], dns_timeouts=1))
    assert got == {("datadog_dns_timeouts", labels(query="by_client", network_dns_query="q")): 1}


def test_tricky_values_survive_exactly() -> None:
    tricky = ["N/A", 'weird"name.example', "back\\slash", "new\nline", "münchen 東京 🚀"]
    rows = [row([("network.dns_query", v)], dns_timeouts=i) for i, v in enumerate(tricky)]
    got = served(DnsJob(DnsQuery(name="q")), *rows)
    assert {dict(key)["network_dns_query"] for _, key in got} == set(tricky)


def test_group_by_that_sanitizes_to_query_becomes_exported_query() -> None:
    job = DnsJob(DnsQuery(name="q", group_by=["query"]))
    got = served(job, row([("query", "x")], dns_timeouts=1))
    assert got == {("datadog_dns_timeouts", labels(query="q", exported_query="x")): 1}


def test_rows_without_metrics_and_null_values_yield_nothing() -> None:
    empty = {"id": "x", "attributes": {"group_bys": [{"key": "network.dns_query", "value": "q"}]}}
    nulls = row(WEB_DB, dns_timeouts=None)
    rendered = render_body(JOB, json.dumps({"data": [empty, {"id": "y"}, nulls]}).encode())
    assert rendered.families == () and rendered.series == 0


def test_repeated_metric_key_in_a_row_keeps_the_first() -> None:
    doubled = row(WEB_DB, dns_timeouts=1)
    doubled["attributes"]["metrics"].append({"key": "dns_timeouts", "value": 5})
    assert served(JOB, doubled) == {("datadog_dns_timeouts", WEB_DB_LABELS): 1}


def test_series_count_matches_samples() -> None:
    rows = [row([("network.dns_query", f"q{i}")], dns_timeouts=1, dns_failures=2) for i in range(4)]
    assert render_body(DnsJob(DnsQuery(name="q")), json.dumps({"data": rows}).encode()).series == 8


@pytest.mark.parametrize(
    "body",
    [
        *UNPARSABLE_BODIES,
        b'{"data": {"unexpected": 1}}',
        b'{"data": [{"attributes": {"metrics": {"dns_timeouts": 1}}}]}',
        b'{"data": [{"attributes": {"metrics": [{"key": "dns_timeouts", "value": "1"}]}}]}',
        b'{"data": [{"attributes": {"group_bys": {"network.dns_query": ["a"]}}}]}',
        b'{"data": [{"attributes": {"metrics": [{"value": 1}]}}]}',
    ],
)
def test_unusable_bodies_raise_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="unexpected dns answer"):
        render_body(JOB, body)


def test_request_defaults_to_grouping_by_dns_query() -> None:
    request = DnsJob(DnsQuery(name="q", window=300, delay=60, limit=50)).request(now=10_000.2)
    assert (request.method, request.path, request.endpoint) == (
        "GET",
        "/api/v2/network/dns/aggregate",
        "dns",
    )
    assert dict(request.params) == {
        "from": "9640",
        "to": "9940",
        "limit": "50",
        "group_by": "network.dns_query",
    }


pairs = st.lists(st.fixed_dictionaries({"key": st.text(), "value": st.text()}), max_size=4)
metric_items = st.lists(
    st.fixed_dictionaries(
        {"key": st.sampled_from([*KNOWN, "dns_requests", ""]) | st.text(), "value": st.integers()}
    ),
    max_size=6,
)
shaped = st.builds(
    lambda rows: {"data": [{"attributes": {"group_bys": g, "metrics": m}} for g, m in rows]},
    st.lists(st.tuples(pairs, metric_items), max_size=5),
)


@settings(max_examples=300)
@given(json_values | shaped)
def test_decoder_only_ever_raises_its_own_error(document: Any) -> None:
    renders_or_fails_cleanly(JOB, document)
