"""Against the simulator: a query that succeeds but carries nothing is up and says so, in
its own self-metrics, one log line per change and the landing page."""

from __future__ import annotations

import pytest

from exporter.collectors.cases import CasesJob
from exporter.collectors.connections import ConnectionsJob
from exporter.collectors.dns import DnsJob
from exporter.collectors.network_health import NetworkHealthJob
from exporter.config.schema import CasesQuery, ConnectionsQuery, DnsQuery, NetworkHealthQuery
from exporter.scheduler import Scheduler
from exporter.server import ServerParts, landing_page
from simulator import Fault, Simulator

from .conftest import deadline, served


def key(name: str, collector: str = "connections") -> frozenset[tuple[str, str]]:
    return frozenset({("collector", collector), ("query", name)})


def page(polling: Scheduler) -> str:
    return landing_page(ServerParts(polling.store, polling.metrics, polling.query_states))


async def test_a_query_matching_nothing_is_up_with_0_rows_logged_once(
    polling: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    # The filter of the old README example: the simulator (like CNM) has client_env, not env.
    query = ConnectionsQuery(name="prod", group_by=["client_service"], tags=["env:prod"])
    await polling.add(ConnectionsJob(query))
    with caplog.at_level("INFO", logger="exporter.scheduler"):
        for _ in range(3):
            await polling.poll_once(("connections", "prod"), deadline(5))
    samples = served(polling)
    assert samples[("datadog_exporter_up", key("prod"))] == 1
    assert samples[("datadog_exporter_answer_rows", key("prod"))] == 0
    empty = [r for r in caplog.records if "0 rows" in r.getMessage()]
    assert len(empty) == 1 and empty[0].levelname == "WARNING"
    assert "up, 0 rows (the answer matched nothing: check" in page(polling)
    assert "<td>up</td>" not in page(polling)


async def test_rows_again_are_logged_once_at_info(
    polling: Scheduler, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    await polling.add(ConnectionsJob(ConnectionsQuery(name="a", group_by=["client_service"])))
    simulator.set_fault("connections", Fault(kind="wrong_shape", body={"data": []}, count=2))
    with caplog.at_level("INFO", logger="exporter.scheduler"):
        for _ in range(4):
            await polling.poll_once(("connections", "a"), deadline(5))
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [m for m in messages if "rows" in m[1]] == [
        (
            "WARNING",
            "query answered 0 rows: it is up but matches nothing; "
            "check its filters, tags and group_by",
        ),
        ("INFO", "query has rows again"),
    ]
    rows = served(polling)[("datadog_exporter_answer_rows", key("a"))]
    assert rows == polling.state(("connections", "a")).rows and rows > 0
    assert "<td>up</td>" in page(polling)


async def test_a_cases_field_answering_one_na_group_is_reported_by_name(
    polling: Scheduler, caplog: pytest.LogCaptureFixture
) -> None:
    await polling.add(CasesJob(CasesQuery(name="by_prio", group_by=["prio"])))
    with caplog.at_level("INFO", logger="exporter.scheduler"):
        for _ in range(2):
            await polling.poll_once(("cases", "by_prio"), deadline(5))
    samples = served(polling)
    assert samples[("datadog_exporter_up", key("by_prio", "cases"))] == 1
    field = key("by_prio", "cases") | {("field", "prio")}
    assert samples[("datadog_exporter_group_by_unresolved", field)] == 1
    said = [r for r in caplog.records if "unresolved" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING"
    assert said[0].__dict__["fields"] == "prio"
    assert "up, group_by unresolved: prio" in page(polling)


async def test_a_resolved_field_reads_0(polling: Scheduler) -> None:
    await polling.add(CasesJob(CasesQuery(name="by_status", group_by=["status"])))
    await polling.poll_once(("cases", "by_status"), deadline(5))
    field = key("by_status", "cases") | {("field", "status")}
    assert served(polling)[("datadog_exporter_group_by_unresolved", field)] == 0


@pytest.mark.parametrize(
    ("collector", "query", "typo"),
    [
        ("connections", ConnectionsQuery(name="t", group_by=["client_servce"]), "client_servce"),
        ("dns", DnsQuery(name="t", group_by=["dns_query"]), "dns_query"),
    ],
)
async def test_a_group_by_typo_is_reported_by_name(
    polling: Scheduler, collector: str, query: ConnectionsQuery | DnsQuery, typo: str
) -> None:
    """The issue's typos against the simulator, which answers N/A for a tag no connection
    carries, as Datadog does: up, but the field is named as unresolved."""
    job = ConnectionsJob(query) if isinstance(query, ConnectionsQuery) else DnsJob(query)
    await polling.add(job)
    await polling.poll_once((collector, "t"), deadline(5))
    samples = served(polling)
    assert samples[("datadog_exporter_up", key("t", collector))] == 1
    field = key("t", collector) | {("field", typo)}
    assert samples[("datadog_exporter_group_by_unresolved", field)] == 1
    assert f"up, group_by unresolved: {typo}" in page(polling)


async def test_no_network_health_insight_is_health_not_a_warning(
    polling: Scheduler, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Network Health Insights answers nothing when nothing fails: its 0 rows are counted
    (datadog_exporter_answer_rows 0) but neither logged as a warning nor hinted at."""
    await polling.add(NetworkHealthJob(NetworkHealthQuery(name="nhi")))
    simulator.set_fault("network_health", Fault(kind="wrong_shape", body={"data": []}))
    with caplog.at_level("INFO", logger="exporter.scheduler"):
        for _ in range(2):
            await polling.poll_once(("network_health", "nhi"), deadline(5))
    samples = served(polling)
    assert samples[("datadog_exporter_up", key("nhi", "network_health"))] == 1
    assert samples[("datadog_exporter_answer_rows", key("nhi", "network_health"))] == 0
    assert not [r for r in caplog.records if "rows" in r.getMessage()]
    assert "<td>up, 0 rows</td>" in page(polling)
