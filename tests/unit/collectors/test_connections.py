"""Connections answers become the documented series, and bad bodies a DecodeError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.connections import FAMILIES, FIELDS, ConnectionsJob
from exporter.collectors.protocol import DecodeError
from exporter.config.schema import DEFAULT_MAX_SERIES, ConnectionsQuery
from exporter.exposition import format_value
from tests.helpers import format_labels, render_body
from tests.helpers import parse_metrics as samples


def render_text(job: ConnectionsJob, document: Any) -> str:
    return render_text_bytes(job, json.dumps(document).encode())


def render_text_bytes(job: ConnectionsJob, body: bytes) -> str:
    rendered = render_body(job, body)
    return "".join((item.family.header() + item.samples).decode() for item in rendered.families)


def row(group_bys: dict[str, list[str]] | None, **metrics: float) -> dict[str, Any]:
    attributes: dict[str, Any] = dict(metrics)
    if group_bys is not None:
        attributes["group_bys"] = group_bys
    return {"id": "x", "type": "aggregated_connection", "attributes": attributes}


JOB = ConnectionsJob(ConnectionsQuery(name="pairs", group_by=["client_service", "server_service"]))


def test_every_documented_field_maps_to_its_metric() -> None:
    fields = {
        "bytes_sent_by_client": "datadog_cnm_client_sent_bytes",
        "bytes_sent_by_server": "datadog_cnm_server_sent_bytes",
        "packets_sent_by_client": "datadog_cnm_client_sent_packets",
        "packets_sent_by_server": "datadog_cnm_server_sent_packets",
        "tcp_retransmits": "datadog_cnm_tcp_retransmits",
        "tcp_resets": "datadog_cnm_tcp_resets",
        "tcp_rto_count": "datadog_cnm_tcp_retransmission_timeouts",
        "tcp_timeouts": "datadog_cnm_tcp_timeouts",
        "tcp_refusals": "datadog_cnm_tcp_refusals",
        "tcp_established_connections": "datadog_cnm_tcp_established_connections",
        "tcp_closed_connections": "datadog_cnm_tcp_closed_connections",
        "tcp_delivered_ce": "datadog_cnm_tcp_delivered_ce_segments",
        "tcp_probe0_count": "datadog_cnm_tcp_zero_window_probes",
        "tcp_rcv_ooo_pack": "datadog_cnm_tcp_out_of_order_packets",
        "tcp_recovery_count": "datadog_cnm_tcp_fast_recoveries",
        "tcp_reord_seen": "datadog_cnm_tcp_reorderings",
    }
    metrics = {field: index + 1 for index, field in enumerate(fields)}
    text = render_text(
        JOB,
        {
            "data": [
                row(
                    {"client_service": ["web"], "server_service": ["db"]},
                    rtt_micro_seconds=1500,
                    **metrics,
                )
            ]
        },
    )
    got = samples(text)
    labels = frozenset({"query": "pairs", "client_service": "web", "server_service": "db"}.items())
    for field, metric in fields.items():
        assert got[(metric, labels)] == metrics[field]
    assert got[("datadog_cnm_tcp_rtt_seconds", labels)] == pytest.approx(0.0015)
    assert len(got) == 17 == len(FAMILIES)


def test_help_names_the_datadog_field() -> None:
    text = render_text(JOB, {"data": [row({}, tcp_rto_count=1)]})
    assert "# HELP datadog_cnm_tcp_retransmission_timeouts" in text
    assert "tcp_rto_count" in text


def test_missing_metric_is_absent_not_zero() -> None:
    text = render_text(
        JOB, {"data": [row({"client_service": ["a"], "server_service": ["b"]}, tcp_resets=0)]}
    )
    names = {name for name, _ in samples(text)}
    assert names == {"datadog_cnm_tcp_resets"}


def test_several_values_join_with_commas_in_given_order() -> None:
    text = render_text(
        JOB, {"data": [row({"client_service": ["b", "a"], "server_service": ["db"]}, tcp_resets=3)]}
    )
    ((_, labels),) = samples(text)
    assert dict(labels)["client_service"] == "b,a"


def test_tricky_values_survive_exactly() -> None:
    tricky = ["N/A", 'say "hi"', "back\\slash", "new\nline", "zürich-ß 東京 🚀"]
    rows = [
        row({"client_service": [value], "server_service": ["s"]}, tcp_resets=i)
        for i, value in enumerate(tricky)
    ]
    got = samples(render_text(JOB, {"data": rows}))
    assert {dict(labels)["client_service"] for _, labels in got} == set(tricky)


def test_dotted_group_by_becomes_sanitized_label() -> None:
    job = ConnectionsJob(ConnectionsQuery(name="ips", group_by=["network.client.ip", "query"]))
    text = render_text(
        job, {"data": [row({"network.client.ip": ["10.0.0.1"], "query": ["x"]}, tcp_resets=1)]}
    )
    ((_, labels),) = samples(text)
    assert dict(labels) == {"query": "ips", "network_client_ip": "10.0.0.1", "exported_query": "x"}


def test_rows_with_same_labels_do_not_duplicate_series() -> None:
    same = {"client_service": ["a"], "server_service": ["b"]}
    got = samples(render_text(JOB, {"data": [row(same, tcp_resets=1), row(same, tcp_resets=2)]}))
    assert list(got.values()) == [1]


def test_no_group_by_gives_one_total_row() -> None:
    job = ConnectionsJob(ConnectionsQuery(name="total"))
    got = samples(render_text(job, {"data": [row(None, tcp_resets=7)]}))
    assert got == {("datadog_cnm_tcp_resets", frozenset({("query", "total")})): 7}


def test_empty_answer_renders_nothing() -> None:
    rendered = render_body(JOB, b'{"data": []}')
    assert rendered.families == () and rendered.series == 0


def test_series_count_matches_samples() -> None:
    rows = [
        row({"client_service": [f"c{i}"], "server_service": ["s"]}, tcp_resets=1, tcp_timeouts=2)
        for i in range(5)
    ]
    assert render_body(JOB, json.dumps({"data": rows}).encode()).series == 10


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"data": {"unexpected": 1}}',
        b"[]",
        b'{"data": [{"attributes": 5}]}',
        b'{"data": [{"attributes": {"tcp_resets": "many"}}]}',
        b'{"data": [',
        b"<html></html>",
    ],
)
def test_unusable_bodies_raise_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        render_body(JOB, body)


def test_request_carries_window_filters_and_limit() -> None:
    job = ConnectionsJob(
        ConnectionsQuery(
            name="q",
            group_by=["client_service", "server_service"],
            tags=["env:prod", "team:net"],
            query="NOT service:canary",
            limit=1000,
            window=300,
            delay=60,
        )
    )
    request = job.request(now=10_000.7)
    assert request.method == "GET"
    assert request.path == "/api/v2/network/connections/aggregate"
    assert dict(request.params) == {
        "from": "9640",
        "to": "9940",
        "limit": "1000",
        "group_by": "client_service,server_service",
        "tags": "env:prod,team:net",
        "query": "NOT service:canary",
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values)
def test_decoder_only_ever_raises_its_own_error(document: Any) -> None:
    try:
        rendered = render_body(JOB, json.dumps(document).encode())
    except DecodeError:
        return
    text = "".join((i.family.header() + i.samples).decode() for i in rendered.families)
    list(text_string_to_metric_families(text))


def test_accounts_add_an_account_label_and_rename_a_field_called_account() -> None:
    query = ConnectionsQuery(name="orgs", group_by=["account", "client_service"])
    document = {"data": [row({"account": ["acme"], "client_service": ["web"]}, tcp_resets=3)]}
    labelled = samples(render_text(ConnectionsJob(query, "eu", account_label=True), document))
    ((_, labels),) = labelled
    assert dict(labels) == {
        "query": "orgs",
        "account": "eu",
        "exported_account": "acme",
        "client_service": "web",
    }
    # Without an accounts: section the series carry no account label; the field keeps its
    # exported_ name, so adding accounts later renames nothing.
    ((_, labels),) = samples(render_text(ConnectionsJob(query), document))
    assert dict(labels) == {"query": "orgs", "exported_account": "acme", "client_service": "web"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("42", 42), ("-3", -3), ("0.25", 0.25), ("1.5e3", 1500), ("2E-2", 0.02)],
)
def test_numbers_in_every_json_spelling_become_their_value(raw: str, expected: float) -> None:
    body = (
        '{"data": [{"attributes": {"group_bys": {"client_service": ["a"]}, '
        f'"tcp_resets": {raw}, "tcp_timeouts": 7}}}}]}}'
    ).encode()
    got = samples(render_text_bytes(JOB, body))
    values = {name: value for (name, _), value in got.items()}
    assert values == {"datadog_cnm_tcp_resets": expected, "datadog_cnm_tcp_timeouts": 7}


def test_explicit_null_is_absent_like_a_missing_field() -> None:
    body = json.dumps(
        {
            "data": [
                row({"client_service": ["a"]}, tcp_resets=None, tcp_timeouts=1),  # type: ignore[arg-type]
                row({"client_service": ["b"]}, tcp_resets=2, rtt_micro_seconds=None),  # type: ignore[arg-type]
            ]
        }
    ).encode()
    got = samples(render_text_bytes(JOB, body))
    assert sorted((name, dict(labels)["client_service"]) for name, labels in got) == [
        ("datadog_cnm_tcp_resets", "b"),
        ("datadog_cnm_tcp_timeouts", "a"),
    ]


def test_booleans_are_not_numbers() -> None:
    with pytest.raises(DecodeError, match="tcp_resets"):
        render_body(JOB, b'{"data": [{"attributes": {"tcp_resets": true}}]}')


def test_same_groups_render_the_same_on_every_poll() -> None:
    """Label text is reused between polls; a changed answer must still render what it says."""
    job = ConnectionsJob(ConnectionsQuery(name="q", group_by=["client_service"]))
    first = [
        row({"client_service": ["a"]}, tcp_resets=1),
        row({"client_service": ["b"]}, tcp_resets=2),
    ]
    second = [
        row({"client_service": ["c"]}, tcp_resets=3),
        row({"client_service": ["a"]}, tcp_resets=4),
    ]
    render_text(job, {"data": first})
    got = samples(render_text(job, {"data": second}))
    assert {dict(labels)["client_service"]: value for (_, labels), value in got.items()} == {
        "c": 3,
        "a": 4,
    }


def guarded(max_series: int) -> ConnectionsJob:
    return ConnectionsJob(
        ConnectionsQuery(name="g", group_by=["client_service"], max_series=max_series)
    )


def three_series_rows(count: int) -> bytes:
    rows = [
        row({"client_service": [f"c{i}"]}, tcp_resets=i, tcp_timeouts=i, rtt_micro_seconds=i)
        for i in range(count)
    ]
    return json.dumps({"data": rows}).encode()


def test_rows_beyond_max_series_are_dropped_and_counted() -> None:
    rendered = render_body(guarded(max_series=7), three_series_rows(4))
    # Each row has 3 series: two rows fit in 7, the other two are dropped.
    assert (rendered.series, rendered.dropped_rows) == (6, 2)
    text = "".join((i.family.header() + i.samples).decode() for i in rendered.families)
    kept = {dict(labels)["client_service"] for _, labels in samples(text)}
    assert kept == {"c0", "c1"}  # the first rows (Datadog's biggest) stay


def test_answer_within_max_series_drops_nothing() -> None:
    rendered = render_body(guarded(max_series=12), three_series_rows(4))
    assert (rendered.series, rendered.dropped_rows) == (12, 0)


def test_max_series_defaults_above_one_full_answer() -> None:
    assert ConnectionsQuery(name="q").max_series == DEFAULT_MAX_SERIES >= 7500 * len(FAMILIES)


# A JSON token for one field of one row: absent (None), or the exact text Datadog sent.
_VALUE_TOKENS = st.none() | st.sampled_from(["null", "0", "-7", "1.50", "1e3", "-2.5E-3", "0.0"])
_VALUE_TOKENS |= st.integers(-(2**63), 2**64).map(str)
_VALUE_TOKENS |= st.floats(allow_nan=False, allow_infinity=False).map(json.dumps)
_GROUP_VALUES = st.lists(st.sampled_from(["web", "db", 'q"x', "a\\b", "n\nl", ""]), max_size=2)


def reference_text(query: str, fields: list[str], rows: list[dict[str, Any]]) -> bytes:
    """Sample lines the slow, obvious way: per family, per row, formatting every value."""
    labelled = []
    seen = set()
    for attributes in rows:
        group_bys = attributes.get("group_bys") or {}
        pairs = [("query", query)]
        pairs += [(f, ",".join(group_bys[f])) for f in fields if group_bys.get(f)]
        labels = format_labels(pairs)
        if labels not in seen:  # the first row of a label set wins
            seen.add(labels)
            labelled.append((labels, attributes))
    lines = []
    for attribute, family in FIELDS:
        tokens = [(labels, attributes.get(attribute)) for labels, attributes in labelled]
        present = [(labels, token) for labels, token in tokens if token is not None]
        # Plain JSON numbers are copied as sent while the whole column is plain; a column
        # with any other spelling (null included) is formatted value by value.
        plain = all(token.strip("0123456789-.") == "" for _, token in present)
        for labels, token in present:
            if token == "null":
                continue
            number = json.loads(token)
            if attribute == "rtt_micro_seconds":
                text = repr(number / 1e6)
            else:
                text = token if plain else format_value(number)
            lines.append(f"{family.name}{labels} {text}\n")
    return "".join(lines).encode()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {attribute: _VALUE_TOKENS for attribute, _ in FIELDS},
            optional={"group_bys": st.dictionaries(st.sampled_from(["a", "b"]), _GROUP_VALUES)},
        ),
        max_size=12,
    )
)
def test_rendering_is_byte_identical_to_a_per_sample_reference(rows: list[dict[str, Any]]) -> None:
    """Every family, every row, every value spelling: the fast column-wise rendering writes
    exactly the bytes a straightforward per-sample loop would."""
    job = ConnectionsJob(ConnectionsQuery(name="ref", group_by=["a", "b"]))
    for attributes in rows:
        for attribute in [name for name, token in attributes.items() if token is None]:
            del attributes[attribute]  # absent, not null
    body = json.dumps({"data": [{"attributes": {}} for _ in rows]})
    # Splice in the tokens as text, so each value keeps the exact spelling under test.
    documents = []
    for attributes in rows:
        members = [
            f"{json.dumps(name)}: {json.dumps(value) if name == 'group_bys' else value}"
            for name, value in attributes.items()
        ]
        documents.append('{"attributes": {' + ", ".join(members) + "}}")
    body = '{"data": [' + ", ".join(documents) + "]}"
    rendered = render_body(job, body.encode())
    got = b"".join(item.samples for item in rendered.families)
    assert got == reference_text("ref", ["a", "b"], rows)
    assert rendered.series == got.count(b"\n")
