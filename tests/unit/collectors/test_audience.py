"""Audience connection lists become info, fields, timestamp and count series; bad bodies fail."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.collectors.audience import AudienceJob, parse_timestamp
from exporter.collectors.protocol import DecodeError
from exporter.config.schema import AudienceQuery
from tests.helpers import parse_metrics, render_body, rendered_text
from tests.unit.collectors.support import UNPARSABLE_BODIES, json_values, renders_or_fails_cleanly

JOB = AudienceJob(AudienceQuery.model_validate({"entity": "users"}))


def answer(*connections: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {
            "id": "users",
            "type": "list_connections_response",
            "attributes": {"connections": list(connections)},
        }
    }


def served(
    document: Any, job: AudienceJob = JOB
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_metrics(rendered_text(render_body(job, json.dumps(document).encode())))


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


CRM = {
    "id": "crm",
    "type": "ref_table",
    "join": {"attribute": "usr.email", "type": "email"},
    "fields": [
        {"id": "plan", "source_name": "subscription_plan", "type": "string"},
        {"id": "ltv", "source_name": "lifetime_value", "type": "number"},
    ],
    "metadata": {"table": "crm_users"},
    "created_at": "2024-03-01T09:30:00Z",
    "updated_at": "2025-01-15T17:45:12.5Z",
    "created_by": "alice@example.com",
}
CRM_LABELS = labels(entity="users", connection_id="crm")


def test_every_field_maps_to_its_series() -> None:
    assert served(answer(CRM)) == {
        (
            "datadog_audience_connection_info",
            labels(
                entity="users",
                connection_id="crm",
                type="ref_table",
                join_attribute="usr.email",
                join_type="email",
            ),
        ): 1,
        ("datadog_audience_connection_fields", CRM_LABELS): 2,
        ("datadog_audience_connection_created_timestamp_seconds", CRM_LABELS): 1709285400,
        ("datadog_audience_connection_updated_timestamp_seconds", CRM_LABELS): 1736963112.5,
        ("datadog_audience_connections", labels(entity="users")): 1,
    }


def test_go_zero_time_and_missing_times_are_omitted() -> None:
    legacy = {**CRM, "created_at": "0001-01-01T00:00:00Z"}
    del legacy["updated_at"]
    names = {name for name, _ in served(answer(legacy))}
    assert "datadog_audience_connection_created_timestamp_seconds" not in names
    assert "datadog_audience_connection_updated_timestamp_seconds" not in names
    assert "datadog_audience_connection_info" in names


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2024-03-01T09:30:00Z", 1709285400.0),
        ("2024-03-01T11:30:00+02:00", 1709285400.0),
        ("2024-03-01T09:30:00.123456789Z", 1709285400.123456),
        ("2024-03-01T09:30:00", 1709285400.0),  # no offset: taken as UTC
        ("1970-01-01T00:00:00Z", 0.0),
        ("0001-01-01T00:00:00Z", None),  # Go's zero time: "not set"
        ("0001-01-01T00:00:00+02:00", None),
        ("1969-12-31T23:59:59Z", None),
        ("", None),
        (None, None),
        ("yesterday", None),
        ("2024-13-01T00:00:00Z", None),
    ],
)
def test_timestamps(text: str | None, seconds: float | None) -> None:
    assert parse_timestamp(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_missing_descriptions_leave_labels_empty_and_missing_fields_omit_the_count() -> None:
    got = served(answer({"id": "bare"}))
    info = labels(entity="users", connection_id="bare", type="", join_attribute="", join_type="")
    assert got == {
        ("datadog_audience_connection_info", info): 1,
        ("datadog_audience_connections", labels(entity="users")): 1,
    }


def test_empty_fields_list_counts_zero() -> None:
    got = served(answer({"id": "new", "fields": []}))
    assert (
        got[("datadog_audience_connection_fields", labels(entity="users", connection_id="new"))]
        == 0
    )


def test_connection_without_id_only_counts_and_repeated_id_keeps_the_first() -> None:
    first = {"id": "dup", "fields": []}
    second = {"id": "dup", "fields": [{"id": "a", "source_name": "a", "type": "string"}]}
    got = served(answer({"type": "ref_table"}, first, second))
    dup = labels(entity="users", connection_id="dup")
    assert got[("datadog_audience_connection_fields", dup)] == 0
    assert got[("datadog_audience_connections", labels(entity="users"))] == 3
    assert sum(1 for name, _ in got if name == "datadog_audience_connection_info") == 1


def test_max_series_counts_the_series_each_connection_really_has() -> None:
    job = AudienceJob(AudienceQuery.model_validate({"entity": "users", "max_series": 5}))
    described = {"id": "a", "fields": [], "created_at": "2024-01-01T00:00:00Z"}  # 3 series
    bare = {"id": "b"}  # only its info series
    rendered = render_body(job, json.dumps(answer(described, bare)).encode())
    # 1 count + 3 + 1 = 5: everything fits, nothing is dropped.
    assert (rendered.series, rendered.dropped_rows) == (5, 0)
    assert (
        "datadog_audience_connection_info",
        labels(entity="users", connection_id="b", type="", join_attribute="", join_type=""),
    ) in parse_metrics(rendered_text(rendered))
    rendered = render_body(job, json.dumps(answer(described, bare, {"id": "c"})).encode())
    assert (rendered.series, rendered.dropped_rows) == (5, 1)


def test_no_connections_exports_zero_for_the_entity() -> None:
    for document in (answer(), {"data": {"type": "list_connections_response"}}):
        assert served(document) == {("datadog_audience_connections", labels(entity="users")): 0}


def test_tricky_values_survive_exactly() -> None:
    tricky = 'id "東京"\\\n🚀'
    got = served(answer({"id": tricky, "join": {"attribute": "a\\b", "type": 'q"'}}))
    info = next(dict(key) for name, key in got if name == "datadog_audience_connection_info")
    assert (info["connection_id"], info["join_attribute"], info["join_type"]) == (
        tricky,
        "a\\b",
        'q"',
    )


def test_name_labels_self_metrics_but_entity_labels_the_data() -> None:
    job = AudienceJob(AudienceQuery(entity="accounts", name="crm_accounts", interval="10m"))
    assert (job.name, job.collector, job.endpoint, job.interval, job.window) == (
        "crm_accounts",
        "audience",
        "audience",
        600.0,
        None,
    )
    assert served(answer(), job) == {("datadog_audience_connections", labels(entity="accounts")): 0}


def test_request_puts_the_entity_in_the_path() -> None:
    request = JOB.request(now=1.0)
    assert (request.method, request.path, dict(request.params), request.json_body) == (
        "GET",
        "/api/v2/product-analytics/users/mapping/connections",
        {},
        None,
    )


@pytest.mark.parametrize(
    "body",
    [
        *UNPARSABLE_BODIES,
        b'{"data": []}',
        b'{"data": {"attributes": {"connections": {"id": "x"}}}}',
        b'{"data": {"attributes": {"connections": [{"id": 5}]}}}',
        b'{"data": {"attributes": {"connections": [{"id": "x", "fields": 2}]}}}',
        b'{"data": {"attributes": {"connections": [{"id": "x", "join": "usr.id"}]}}}',
        b'{"data": {"attributes": {"connections": [{"id": "x", "created_at": 1700000000}]}}}',
    ],
)
def test_unusable_bodies_raise_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="unexpected audience answer"):
        render_body(JOB, body)


connection = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(),
        "type": st.text(),
        "join": st.fixed_dictionaries({}, optional={"attribute": st.text(), "type": st.text()}),
        "fields": st.lists(st.dictionaries(st.text(), st.text()), max_size=3),
        "created_at": st.text() | st.datetimes().map(lambda d: d.isoformat() + "Z"),
        "updated_at": st.text() | st.just("0001-01-01T00:00:00Z"),
    },
)
shaped = st.lists(connection, max_size=5).map(lambda items: answer(*items))


@settings(max_examples=300)
@given(json_values | shaped)
def test_decoder_only_ever_raises_its_own_error(document: Any) -> None:
    renders_or_fails_cleanly(JOB, document)
