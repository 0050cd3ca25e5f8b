"""Case Management aggregates become datadog_cases / datadog_cases_all_groups; bad bodies fail."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.collectors.cases import CasesJob
from exporter.collectors.protocol import DecodeError
from exporter.config.schema import CasesQuery
from tests.helpers import parse_metrics, render_body, rendered_text
from tests.unit.collectors.support import UNPARSABLE_BODIES, json_values, renders_or_fails_cleanly

JOB = CasesJob(CasesQuery(name="by_status", group_by=["status"]))


def answer(groups: list[tuple[str, list[Any]]], total: Any = 100) -> dict[str, Any]:
    attributes: dict[str, Any] = {"groups": [{"group": g, "value": v} for g, v in groups]}
    if total is not None:
        attributes["total"] = total
    return {"data": {"id": "agg-1", "type": "aggregate", "attributes": attributes}}


def served(job: CasesJob, document: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_metrics(rendered_text(render_body(job, json.dumps(document).encode())))


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def test_one_field_groups_become_a_label_named_after_the_field() -> None:
    got = served(JOB, answer([("OPEN", [42]), ("CLOSED", [58])]))
    assert got == {
        ("datadog_cases", labels(query="by_status", status="OPEN")): 42,
        ("datadog_cases", labels(query="by_status", status="CLOSED")): 58,
        ("datadog_cases_all_groups", labels(query="by_status")): 100,
    }


@pytest.mark.parametrize(
    ("groups", "shape"),
    [
        # The three shapes the simulator can give for [status, priority] (see docs/simulator.md).
        ([("OPEN,P1", [7]), ("CLOSED,P2", [3])], "combined"),
        ([("OPEN", [7]), ("CLOSED", [3]), ("P1", [6]), ("P2", [4])], "facets"),
        ([("OPEN", [7]), ("CLOSED", [3])], "first_field"),
    ],
)
def test_several_fields_share_one_label_carrying_the_group_exactly(
    groups: list[tuple[str, list[Any]]], shape: str
) -> None:
    job = CasesJob(CasesQuery(name="sp", group_by=["status", "priority"]))
    got = served(job, answer(groups, total=10))
    expected = {
        ("datadog_cases", labels(query="sp", status_priority=group)): value[0]
        for group, value in groups
    }
    expected[("datadog_cases_all_groups", labels(query="sp"))] = 10
    assert got == expected, shape


def test_dotted_field_and_field_named_query_get_valid_distinct_labels() -> None:
    dotted = CasesJob(CasesQuery(name="c", group_by=["custom.team"]))
    assert served(dotted, answer([("net", [1])], total=None)) == {
        ("datadog_cases", labels(query="c", custom_team="net")): 1
    }
    clash = CasesJob(CasesQuery(name="c", group_by=["query"]))
    assert served(clash, answer([("x", [1])], total=None)) == {
        ("datadog_cases", labels(query="c", exported_query="x")): 1
    }


def test_tricky_group_values_survive_exactly() -> None:
    tricky = ["N/A", 'Support "Tier 1"', "back\\slash", "new\nline", "zürich-ß 東京", "a,b", ""]
    got = served(JOB, answer([(value, [i]) for i, value in enumerate(tricky)]))
    assert {
        dict(key)["status"]: v for (name, key), v in got.items() if name == "datadog_cases"
    } == {value: i for i, value in enumerate(tricky)}


def test_first_number_of_value_is_the_count_and_empty_value_is_absent() -> None:
    got = served(JOB, answer([("OPEN", [5, 9]), ("CLOSED", []), ("X", [2.5])], total=7.0))
    assert got == {
        ("datadog_cases", labels(query="by_status", status="OPEN")): 5,
        ("datadog_cases", labels(query="by_status", status="X")): 2.5,
        ("datadog_cases_all_groups", labels(query="by_status")): 7,
    }


def test_repeated_group_keeps_the_first() -> None:
    got = served(JOB, answer([("N/A", [3]), ("N/A", [4])], total=None))
    assert got == {("datadog_cases", labels(query="by_status", status="N/A")): 3}


def test_missing_total_and_groups_yield_nothing_rather_than_zero() -> None:
    rendered = render_body(JOB, b'{"data": {"attributes": {}}}')
    assert rendered.families == () and rendered.series == 0


def test_empty_groups_still_export_the_total() -> None:
    assert served(JOB, answer([], total=0)) == {
        ("datadog_cases_all_groups", labels(query="by_status")): 0
    }


def test_series_count_matches_samples() -> None:
    rendered = render_body(JOB, json.dumps(answer([("A", [1]), ("B", [2])])).encode())
    assert rendered.series == 3


@pytest.mark.parametrize(
    "body",
    [
        *UNPARSABLE_BODIES,
        b'{"data": []}',
        b'{"data": {"attributes": {"groups": {"OPEN": 1}}}}',
        b'{"data": {"attributes": {"groups": [{"group": "OPEN", "value": 4}]}}}',
        b'{"data": {"attributes": {"groups": [{"group": ["OPEN"], "value": [4]}]}}}',
        b'{"data": {"attributes": {"groups": [{"value": [4]}]}}}',
        b'{"data": {"attributes": {"total": "100"}}}',
        b'{"errors": ["Forbidden"]}',
    ],
)
def test_unusable_bodies_raise_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="unexpected cases answer"):
        render_body(JOB, body)


def test_request_is_a_post_with_the_documented_body() -> None:
    job = CasesJob(
        CasesQuery(name="q", group_by=["status", "priority"], query_filter="project:NET", limit=14)
    )
    request = job.request(now=1.0)
    assert (request.method, request.path, request.endpoint) == (
        "POST",
        "/api/v2/cases/aggregate",
        "cases",
    )
    assert request.json_body == {
        "data": {
            "type": "aggregate",
            "attributes": {
                "query_filter": "project:NET",
                "group_by": {"groups": ["status", "priority"], "limit": 14},
            },
        }
    }
    assert job.window is None


shaped = st.builds(
    answer,
    st.lists(st.tuples(st.text(), st.lists(st.integers() | st.floats(), max_size=2)), max_size=6),
    st.none() | st.integers() | st.floats(),
)


@settings(max_examples=300)
@given(json_values | shaped)
def test_decoder_only_ever_raises_its_own_error(document: Any) -> None:
    renders_or_fails_cleanly(JOB, document)
