"""What an answer carries besides its series: its rows (before the max_series cut) and the
group_by fields no row resolved, for every collector (``Rendered.rows`` and
``Rendered.group_by_unresolved``), so an empty or mis-grouped query is not dressed as health."""

from __future__ import annotations

import json
from typing import Any

from exporter.collectors.audience import AudienceJob
from exporter.collectors.cases import CasesJob
from exporter.collectors.connections import ConnectionsJob
from exporter.collectors.dns import DnsJob
from exporter.collectors.protocol import QueryJob
from exporter.config.schema import AudienceQuery, CasesQuery, ConnectionsQuery, DnsQuery
from exporter.exposition import Rendered


def render(job: QueryJob, document: Any) -> Rendered:
    return job.render(job.decode(json.dumps(document).encode()))


def connection(group_bys: dict[str, list[str]] | None, retransmits: int = 1) -> dict[str, Any]:
    attributes: dict[str, Any] = {"tcp_retransmits": retransmits}
    if group_bys is not None:
        attributes["group_bys"] = group_bys
    return {"id": "x", "type": "aggregated_connection", "attributes": attributes}


def dns_row(groups: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": "x",
        "type": "aggregated_dns",
        "attributes": {
            "group_bys": [{"key": key, "value": value} for key, value in groups],
            "metrics": [{"key": "dns_total_requests", "value": 3}],
        },
    }


def cases_answer(groups: list[tuple[str, int]], total: int | None = None) -> dict[str, Any]:
    return {
        "data": {
            "id": "agg",
            "type": "aggregate",
            "attributes": {
                "total": sum(count for _, count in groups) if total is None else total,
                "groups": [{"group": group, "value": [count]} for group, count in groups],
            },
        }
    }


CONNECTIONS = ConnectionsJob(
    ConnectionsQuery(name="pairs", group_by=["client_service", "client_servce"], max_series=2)
)


def test_connections_count_every_row_before_the_max_series_cut() -> None:
    rows = [connection({"client_service": [f"svc-{i}"]}) for i in range(5)]
    rendered = render(CONNECTIONS, {"data": rows})
    assert rendered.rows == 5
    assert rendered.series == 2 and rendered.dropped_rows == 3


def test_an_empty_connections_answer_has_0_rows_and_judges_no_field() -> None:
    rendered = render(CONNECTIONS, {"data": []})
    assert rendered.rows == 0
    assert rendered.group_by_unresolved == ()


def test_a_connections_field_absent_or_na_in_every_row_is_unresolved() -> None:
    rows = [
        connection({"client_service": ["web"], "client_servce": ["N/A"]}),
        connection({"client_service": ["N/A"]}),
        connection(None),
    ]
    rendered = render(CONNECTIONS, {"data": rows})
    assert rendered.group_by_unresolved == (("client_service", False), ("client_servce", True))


def test_a_connections_field_is_judged_again_on_every_answer_despite_the_label_cache() -> None:
    job = ConnectionsJob(ConnectionsQuery(name="q", group_by=["client_team"]))
    na = {"data": [connection({"client_team": ["N/A"]})]}
    assert render(job, na).group_by_unresolved == (("client_team", True),)
    resolved = {"data": [connection({"client_team": ["N/A", "sre"]})]}
    assert render(job, resolved).group_by_unresolved == (("client_team", False),)
    assert render(job, na).group_by_unresolved == (("client_team", True),)


def test_a_connections_query_without_group_by_has_no_field_to_judge() -> None:
    job = ConnectionsJob(ConnectionsQuery(name="all"))
    rendered = render(job, {"data": [connection({})]})
    assert rendered.rows == 1 and rendered.group_by_unresolved == ()


def test_dns_counts_rows_and_finds_the_field_datadog_did_not_know() -> None:
    job = DnsJob(DnsQuery(name="d", group_by=["client_service", "dns_query"]))
    rows = [dns_row([("client_service", "web"), ("dns_query", "N/A")]), dns_row([])]
    rendered = render(job, {"data": rows})
    assert rendered.rows == 2
    assert rendered.group_by_unresolved == (("client_service", False), ("dns_query", True))
    empty = render(job, {"data": []})
    assert (empty.rows, empty.group_by_unresolved) == (0, ())


def test_cases_one_na_group_marks_the_field_unresolved() -> None:
    job = CasesJob(CasesQuery(name="c", group_by=["prio"]))
    rendered = render(job, cases_answer([("N/A", 40)]))
    assert rendered.rows == 1
    assert rendered.group_by_unresolved == (("prio", True),)
    known = CasesJob(CasesQuery(name="c", group_by=["status"]))
    rendered = render(known, cases_answer([("OPEN", 4), ("N/A", 1)]))
    assert rendered.group_by_unresolved == (("status", False),)


def test_cases_several_fields_are_judged_by_position_when_every_group_splits_so() -> None:
    job = CasesJob(CasesQuery(name="c", group_by=["status", "prio"]))
    rendered = render(job, cases_answer([("OPEN,N/A", 4), ("CLOSED,N/A", 6)]))
    assert rendered.group_by_unresolved == (("status", False), ("prio", True))
    # Facets (groups that do not split per field): only all-N/A marks the fields.
    rendered = render(job, cases_answer([("OPEN", 4), ("N/A", 6)]))
    assert rendered.group_by_unresolved == (("status", False), ("prio", False))


def test_cases_matching_nothing_have_0_rows() -> None:
    job = CasesJob(CasesQuery(name="c", group_by=["status"], query_filter="status:open"))
    rendered = render(job, cases_answer([], total=0))
    assert (rendered.rows, rendered.group_by_unresolved) == (0, ())


def test_audience_counts_its_connections() -> None:
    job = AudienceJob(AudienceQuery(name="users", entity="users"))
    body = {
        "data": {
            "type": "list_connections_response",
            "attributes": {"connections": [{"id": "a"}, {"id": "b"}]},
        }
    }
    assert render(job, body).rows == 2
    empty = {"data": {"type": "list_connections_response", "attributes": {"connections": []}}}
    assert render(job, empty).rows == 0
