"""What the online check reads from an answer (rows, N/A group_by fields) and what it costs."""

from __future__ import annotations

import json

from exporter.config.accounts import resolve_accounts
from exporter.config.schema import parse_config
from exporter.online import answer_rows, na_fields, planned_calls, probed_queries

CONFIG = parse_config(
    "connections:\n"
    "  - {name: a, group_by: [client_service, client_servce], limit: 500}\n"
    "  - {name: b}\n"
    "dns: [{name: d, group_by: [network.dns_query, server_ungrouped]}]\n"
    "cases: [{name: c, group_by: [status]}]\n"
)


def connections_body(*groups: dict[str, list[str]]) -> bytes:
    rows = [
        {"id": "x", "type": "aggregated_connection", "attributes": {"group_bys": g}} for g in groups
    ]
    return json.dumps({"data": rows}).encode()


def test_a_field_na_or_absent_in_every_row_is_reported() -> None:
    query = CONFIG.connections[0]
    rows = answer_rows(
        "connections",
        connections_body(
            {"client_service": ["web"], "client_servce": ["N/A"]},
            {"client_service": ["N/A"]},
        ),
    )
    assert len(rows) == 2
    assert na_fields(query, rows) == ("client_servce",)
    assert na_fields(query, []) == ()  # an empty answer is another signal, not this one


def test_dns_rows_are_read_from_their_key_value_list_and_the_switch_is_no_field() -> None:
    body = {
        "data": [
            {"attributes": {"group_bys": [{"key": "network.dns_query", "value": "N/A"}]}},
        ]
    }
    rows = answer_rows("dns", json.dumps(body).encode())
    assert na_fields(CONFIG.dns[0], rows) == ("network.dns_query",)


def test_cases_answering_one_na_group_report_every_group_field() -> None:
    body = {"data": {"attributes": {"total": 3, "groups": [{"group": "N/A", "value": [3]}]}}}
    rows = answer_rows("cases", json.dumps(body).encode())
    assert na_fields(CONFIG.cases[0], rows) == ("status",)
    fine = {"data": {"attributes": {"groups": [{"group": "OPEN", "value": [3]}]}}}
    assert na_fields(CONFIG.cases[0], answer_rows("cases", json.dumps(fine).encode())) == ()


def test_network_health_insights_are_counted_as_rows() -> None:
    body = {"data": [{"type": "network-health-insights", "attributes": {"type": "dns"}}] * 3}
    assert len(answer_rows("network_health", json.dumps(body).encode())) == 3


def test_one_probe_per_endpoint_asking_for_one_row() -> None:
    probed = probed_queries(CONFIG, "default")
    assert [(entry.endpoint, query.name) for entry, query in probed] == [
        ("connections", "a"),
        ("dns", "d"),
        ("cases", "c"),
    ]
    assert all(query.model_dump()["limit"] == 1 for _, query in probed)
    assert planned_calls(CONFIG, resolve_accounts(CONFIG, "https://x.example")) == 4
