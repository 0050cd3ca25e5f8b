"""What the online check reads from an answer (rows, N/A group_by fields) and what it costs."""

from __future__ import annotations

import json

from exporter.collectors.registry import configured_jobs
from exporter.config.accounts import resolve_accounts
from exporter.config.schema import parse_config
from exporter.online import answer_signals, planned_calls, probed_queries

CONFIG = parse_config(
    "connections:\n"
    "  - {name: a, group_by: [client_service, client_servce], limit: 500}\n"
    "  - {name: b}\n"
    "dns: [{name: d, group_by: [network.dns_query, server_ungrouped]}]\n"
    "cases: [{name: c, group_by: [status]}]\n"
)
# The jobs whose answers the signal tests read.
JOBS = {
    (job.collector, job.name): job
    for job in configured_jobs(
        parse_config(
            "connections: [{name: a, group_by: [client_service, client_servce]}]\n"
            "dns: [{name: d, group_by: [network.dns_query, server_ungrouped]}]\n"
            "cases: [{name: c, group_by: [status]}, {name: c2, group_by: [status, priority]}]\n"
            "network_health: [{name: nhi}]\n"
        )
    )
}


def connections_body(*groups: dict[str, list[str]]) -> bytes:
    rows = [
        {"id": "x", "type": "aggregated_connection", "attributes": {"group_bys": g}} for g in groups
    ]
    return json.dumps({"data": rows}).encode()


def cases_body(*groups: str) -> bytes:
    answer = {"data": {"attributes": {"groups": [{"group": g, "value": [3]} for g in groups]}}}
    return json.dumps(answer).encode()


def test_a_field_na_or_absent_in_every_row_is_reported() -> None:
    job = JOBS["connections", "a"]
    body = connections_body(
        {"client_service": ["web"], "client_servce": ["N/A"]},
        {"client_service": ["N/A"]},
    )
    assert answer_signals(job, body) == (2, ("client_servce",))
    # An empty answer is another signal, not this one.
    assert answer_signals(job, connections_body()) == (0, ())


def test_dns_rows_are_read_from_their_key_value_list_and_the_switch_is_no_field() -> None:
    body = {
        "data": [
            {
                "attributes": {
                    "group_bys": [{"key": "network.dns_query", "value": "N/A"}],
                    "metrics": [{"key": "total_requests", "value": 1}],
                }
            },
        ]
    }
    assert answer_signals(JOBS["dns", "d"], json.dumps(body).encode()) == (
        1,
        ("network.dns_query",),
    )


def test_cases_answering_one_na_group_report_every_group_field() -> None:
    assert answer_signals(JOBS["cases", "c"], cases_body("N/A")) == (1, ("status",))
    assert answer_signals(JOBS["cases", "c"], cases_body("OPEN")) == (1, ())


def test_the_report_judges_cases_fields_as_the_live_poll_does() -> None:
    """Groups shaped ``OPEN,N/A`` leave the second field unresolved: the live poll's
    datadog_exporter_group_by_unresolved says so, and so does the online report."""
    job = JOBS["cases", "c2"]
    live = job.render(job.decode(cases_body("OPEN,N/A", "CLOSED,N/A")))
    assert dict(live.group_by_unresolved) == {"status": False, "priority": True}
    assert answer_signals(job, cases_body("OPEN,N/A", "CLOSED,N/A")) == (2, ("priority",))


def test_network_health_insights_are_counted_as_rows() -> None:
    insight = {
        "type": "network-health-insights",
        "attributes": {"type": "dns", "failure_rate": 0.5, "client_service": "web"},
    }
    body = json.dumps({"data": [insight] * 3}).encode()
    rows, unresolved = answer_signals(JOBS["network_health", "nhi"], body)
    assert (rows, unresolved) == (3, ())


def test_one_probe_per_endpoint_asking_for_one_row() -> None:
    probed = probed_queries(CONFIG, "default")
    assert [(entry.endpoint, query.name) for entry, query in probed] == [
        ("connections", "a"),
        ("dns", "d"),
        ("cases", "c"),
    ]
    assert all(query.model_dump()["limit"] == 1 for _, query in probed)
    assert planned_calls(CONFIG, resolve_accounts(CONFIG, "https://x.example")) == 4
