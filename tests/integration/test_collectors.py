"""DNS, cases and audience queries polled through the scheduler against the simulator."""

from __future__ import annotations

import json
import time

import pytest

from exporter.app import build_jobs
from exporter.collectors.audience import AudienceJob
from exporter.collectors.cases import CasesJob
from exporter.collectors.connections import ConnectionsJob
from exporter.collectors.dns import DnsJob
from exporter.collectors.protocol import QueryJob
from exporter.config.schema import (
    AudienceQuery,
    CasesQuery,
    ConnectionsQuery,
    DnsQuery,
    parse_config,
)
from exporter.scheduler import Scheduler
from simulator import Fault, Simulator, SimulatorOptions
from tests.helpers import EXAMPLE_QUERIES, SampleKey, Samples

from .conftest import API_KEY, APP_KEY, deadline, served

DNS = DnsJob(DnsQuery(name="by_query"))
CASES = CasesJob(CasesQuery(name="by_status", group_by=["status"]))
CASES_MULTI = CasesJob(CasesQuery(name="by_status_priority", group_by=["status", "priority"]))
USERS = AudienceJob(AudienceQuery.model_validate({"entity": "users"}))
ACCOUNTS = AudienceJob(AudienceQuery(entity="accounts", name="accts"))


def up(samples: dict[SampleKey, float], collector: str, query: str) -> float:
    return samples[("datadog_exporter_up", frozenset({("collector", collector), ("query", query)}))]


def family(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels).get("query", ""): v for (n, labels), v in samples.items() if n == name}


async def poll_all(scheduler: Scheduler, *jobs: QueryJob) -> Samples:
    await scheduler.add(*jobs)
    for item in jobs:
        await scheduler.poll_once((item.collector, item.name), deadline(5))
    return served(scheduler)


async def test_dns_query_publishes_its_families_and_window(polling: Scheduler) -> None:
    samples = await poll_all(polling, DNS)
    assert up(samples, "dns", "by_query") == 1
    requests = [dict(labels) for (n, labels), _ in samples.items() if n == "datadog_dns_requests"]
    assert len(requests) > 5
    assert all(set(labels) == {"query", "network_dns_query"} for labels in requests)
    assert 'weird"name.example' in {labels["network_dns_query"] for labels in requests}
    names = {n for n, _ in samples if n.startswith("datadog_dns_")}
    assert {"datadog_dns_nxdomain_responses", "datadog_dns_success_latency_percentile"} <= names
    window = (
        "datadog_exporter_window_seconds",
        frozenset({("collector", "dns"), ("query", "by_query")}),
    )
    assert samples[window] == 300
    assert polling.state(("dns", "by_query")).series == len(
        [k for k in samples if k[0].startswith("datadog_dns_")]
    )


async def test_cases_counts_add_up_to_the_total(polling: Scheduler) -> None:
    samples = await poll_all(polling, CASES, CASES_MULTI)
    by_status = {
        dict(labels)["status"]: v
        for (n, labels), v in samples.items()
        if n == "datadog_cases" and ("query", "by_status") in labels
    }
    assert set(by_status) == {"OPEN", "IN_PROGRESS", "CLOSED"}
    totals = family(samples, "datadog_cases_all_groups")
    assert sum(by_status.values()) == totals["by_status"] > 0
    # The simulator's default multi-field shape: one group per combination, "OPEN,P1".
    combined = {
        dict(labels)["status_priority"]
        for (n, labels), _ in samples.items()
        if n == "datadog_cases" and ("query", "by_status_priority") in labels
    }
    assert "OPEN,P1" in combined
    assert up(samples, "cases", "by_status") == up(samples, "cases", "by_status_priority") == 1
    assert not any(
        n == "datadog_exporter_window_seconds" and ("collector", "cases") in labels
        for n, labels in samples
    )


@pytest.mark.parametrize(
    "simulator_options",
    [
        SimulatorOptions(api_key=API_KEY, app_key=APP_KEY, cases_multi_group=mode)
        for mode in ("facets", "first_field")
    ],
    ids=["facets", "first_field"],
)
async def test_cases_with_several_fields_survive_every_answer_shape(polling: Scheduler) -> None:
    samples = await poll_all(polling, CASES_MULTI)
    groups = {
        dict(labels)["status_priority"]
        for (n, labels), _ in samples.items()
        if n == "datadog_cases"
    }
    assert "OPEN" in groups
    assert up(samples, "cases", "by_status_priority") == 1


async def test_audience_entities_publish_connections_and_omit_unset_times(
    polling: Scheduler,
) -> None:
    samples = await poll_all(polling, USERS, ACCOUNTS)
    counts = {
        dict(labels)["entity"]: v
        for (n, labels), v in samples.items()
        if n == "datadog_audience_connections"
    }
    assert counts == {"users": 3, "accounts": 2}
    info = [
        dict(labels)
        for (n, labels), _ in samples.items()
        if n == "datadog_audience_connection_info"
    ]
    assert len(info) == 5
    updated = {
        dict(labels)["connection_id"]
        for (n, labels), _ in samples.items()
        if n == "datadog_audience_connection_updated_timestamp_seconds"
    }
    # The legacy connection carries Go's zero time; the new one no updated_at at all.
    assert "77c1d0b4-users-legacy" not in updated and "c2b9e1f0-users-new" not in updated
    assert "3a8f6a2e-users-crm" in updated
    assert up(samples, "audience", "users") == up(samples, "audience", "accts") == 1


async def test_unknown_audience_entity_fails_the_poll_not_the_others(
    polling: Scheduler,
) -> None:
    planets = AudienceJob(AudienceQuery.model_validate({"entity": "planets"}))
    samples = await poll_all(polling, planets, USERS)
    assert up(samples, "audience", "planets") == 0
    assert up(samples, "audience", "users") == 1
    errors = (
        "datadog_exporter_poll_errors_total",
        frozenset({("collector", "audience"), ("query", "planets"), ("reason", "http_error")}),
    )
    assert samples[errors] == 1


# One query of every registered collector.
EXAMPLES = build_jobs(parse_config(json.dumps({s: [q] for s, q in EXAMPLE_QUERIES.items()})))


@pytest.mark.parametrize("job", EXAMPLES, ids=[job.collector for job in EXAMPLES])
async def test_bad_answer_keeps_last_good_data_as_decode_error(
    polling: Scheduler, simulator: Simulator, job: QueryJob
) -> None:
    endpoint = job.endpoint
    before = await poll_all(polling, job)
    data = {k for k in before if not k[0].startswith(("datadog_exporter_", "process_"))}
    assert data
    simulator.set_fault(endpoint, Fault(kind="wrong_shape", count=1))
    await polling.poll_once((job.collector, job.name), deadline(5))
    after = served(polling)
    assert data <= set(after)
    state = polling.state((job.collector, job.name))
    assert state.up is False and state.serving_stale is True
    assert endpoint in (state.last_error or "")
    errors = (
        "datadog_exporter_poll_errors_total",
        frozenset({("collector", endpoint), ("query", job.name), ("reason", "decode_error")}),
    )
    assert after[errors] == 1


async def test_429_on_one_endpoint_does_not_hold_the_others(
    polling: Scheduler, simulator: Simulator
) -> None:
    pairs = ConnectionsJob(ConnectionsQuery(name="pairs"))
    await polling.add(CASES, pairs, DNS)
    simulator.set_fault("cases", Fault(kind="rate_limit", reset_seconds=30, count=1))
    await polling.poll_once(("cases", "by_status"), deadline(1))
    started = time.monotonic()
    await polling.poll_once(("connections", "pairs"), deadline(5))
    await polling.poll_once(("dns", "by_query"), deadline(5))
    assert time.monotonic() - started < 5
    samples = served(polling)
    assert up(samples, "cases", "by_status") == 0
    assert up(samples, "connections", "pairs") == up(samples, "dns", "by_query") == 1
    blocked = samples[
        (
            "datadog_exporter_rate_limited_until_timestamp_seconds",
            frozenset({("account", "default"), ("endpoint", "cases")}),
        )
    ]
    assert blocked > time.time() + 20


def test_build_jobs_builds_every_section_in_order() -> None:
    config = parse_config(
        """
audience: [{entity: users}]
cases: [{name: c, group_by: [status]}]
dns: [{name: d}]
connections: [{name: n}]
"""
    )
    jobs = build_jobs(config)
    assert [(j.collector, j.endpoint, j.name) for j in jobs] == [
        ("connections", "connections", "n"),
        ("dns", "dns", "d"),
        ("cases", "cases", "c"),
        ("audience", "audience", "users"),
    ]


def test_reload_sees_unchanged_queries_as_equal_jobs_and_edited_ones_as_changed() -> None:
    before = build_jobs(parse_config("dns: [{name: d}]\ncases: [{name: c, group_by: [s]}]"))
    same = build_jobs(parse_config("dns: [{name: d}]\ncases: [{name: c, group_by: [s]}]"))
    edited = build_jobs(parse_config("dns: [{name: d}]\ncases: [{name: c, group_by: [t]}]"))
    assert before == same
    assert before[0] == edited[0] and before[1] != edited[1]
