"""What the metrics reference is generated from is what /metrics serves: every family's
declared help, type and labels, for the collectors' families and the self-metrics alike."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.process_collector import ProcessCollector

from exporter.catalog import SELF_FAMILIES, data_families, sample_name
from exporter.collectors import connections
from exporter.collectors.cases import GROUP_LABEL
from exporter.collectors.network_health import CERTIFICATE_ID_IF_ASKED
from exporter.collectors.registry import BY_SECTION, REGISTRY
from exporter.config.schema import Config
from exporter.exposition import ACCOUNT_IF_CONFIGURED, GROUP_BY_LABELS, Family
from exporter.selfmetrics import PROCESS_FAMILIES, RateLimitView, SelfMetrics
from tests.helpers import render_body, rendered_text

# One answer per collector in which every family it declares has a sample.
_CONNECTION_FIELDS = [attribute for attribute, _ in connections.FIELDS]
ANSWERS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "connections": (
        {"name": "q", "group_by": ["client_service", "network.server.ip"]},
        {
            "data": [
                {
                    "attributes": {
                        "group_bys": {"client_service": ["web"], "network.server.ip": ["10.0.0.1"]},
                        **dict.fromkeys(_CONNECTION_FIELDS, 3),
                    }
                }
            ]
        },
    ),
    "dns": (
        {"name": "q", "group_by": ["network.dns_query"]},
        {
            "data": [
                {
                    "attributes": {
                        "group_bys": [{"key": "network.dns_query", "value": "db.internal"}],
                        "metrics": [
                            {"key": key, "value": 2}
                            for key in (
                                "dns_total_requests",
                                "dns_failures",
                                "dns_successful_responses",
                                "dns_failed_responses",
                                "dns_timeouts",
                                "dns_responses.nxdomain",
                                "dns_responses.servfail",
                                "dns_responses.other",
                                "dns_success_latency_percentile",
                                "dns_failure_latency_percentile",
                            )
                        ],
                    }
                }
            ]
        },
    ),
    "cases": (
        {"name": "q", "group_by": ["status", "priority"]},
        {"data": {"attributes": {"total": 5, "groups": [{"group": "OPEN,P1", "value": [5]}]}}},
    ),
    "audience": (
        {"entity": "users"},
        {
            "data": {
                "attributes": {
                    "connections": [
                        {
                            "id": "c1",
                            "type": "ref_table",
                            "join": {"attribute": "usr.email", "type": "email"},
                            "fields": [{}, {}],
                            "created_at": "2024-05-01T00:00:00Z",
                            "updated_at": "2024-05-02T00:00:00Z",
                        }
                    ]
                }
            }
        },
    ),
    "network_health": (
        {"name": "q"},
        {
            "data": [
                {
                    "attributes": {
                        "type": "dns",
                        "failure_type": "nxdomain",
                        "client_service": "web",
                        "server_service": "coredns",
                        "failure_magnitude": 3,
                        "failure_rate": 2.5,
                        "total_requests": 120,
                        "traffic_volume": {"bytes_read": 1, "bytes_written": 2, "total_traffic": 3},
                        "dns_query": "db.internal",
                        "dns_server": "10.2.0.1",
                    }
                },
                {
                    "attributes": {
                        "type": "tls-cert",
                        "failure_type": "expiring_soon",
                        "client_service": "web",
                        "server_service": "lb",
                        "domain_name": "shop.example",
                        "certificate_id": "arn:cert",
                        "days_until_expiration": 10,
                        "certificate_lifetime_percent": 88.5,
                        "account_id": "123",
                        "client_region": "us-east-1",
                        "server_region": "us-east-1",
                        "loadbalancer_id": "arn:lb",
                    }
                },
            ]
        },
    ),
}


def test_every_registered_collector_has_an_answer_here() -> None:
    assert set(ANSWERS) == set(BY_SECTION)


def expected_labels(family: Family, group_by: list[str], accounts: bool) -> set[str]:
    """The label names a declaration promises, its stand-ins resolved for one query."""
    names: set[str] = set()
    for label in family.labels:
        if label == ACCOUNT_IF_CONFIGURED:
            names |= {"account"} if accounts else set()
        elif label == GROUP_BY_LABELS:
            names |= {field.replace(".", "_") for field in group_by}
        elif label == GROUP_LABEL:
            names.add("_".join(group_by))
        elif label == CERTIFICATE_ID_IF_ASKED:
            pass  # the example query leaves certificate_id_label off
        else:
            assert not label.startswith("<"), f"{family.name}: unknown stand-in {label}"
            names.add(label)
    return names


@pytest.mark.parametrize("accounts", [False, True])
@pytest.mark.parametrize("section", sorted(ANSWERS))
def test_declared_labels_help_and_type_are_what_a_poll_renders(
    section: str, accounts: bool
) -> None:
    """Every family of the collector appears in its answer with the declared help, type and
    exactly the declared labels (with and without an accounts: section)."""
    settings, answer = ANSWERS[section]
    config = Config.model_validate({section: [settings]})
    (query,) = getattr(config, section)
    entry = BY_SECTION[section]
    job = entry.job(query, "acme" if accounts else "default", accounts)
    text = rendered_text(render_body(job, json.dumps(answer).encode()))
    served = {family.name: family for family in text_string_to_metric_families(text)}
    assert set(served) == {family.name for family in entry.families}
    for declared in entry.families:
        family = served[declared.name]
        assert (family.documentation, family.type) == (declared.help, declared.type)
        group_by = list(getattr(query, "group_by", []))
        for sample in family.samples:
            assert set(sample.labels) == expected_labels(declared, group_by, accounts), (
                declared.name
            )


def test_the_catalog_lists_the_collectors_in_registry_order_under_their_titles() -> None:
    assert [families for _, families in data_families()] == [e.families for e in REGISTRY]
    titles = [title for title, _ in data_families()]
    assert all(titles) and len(set(titles)) == len(titles)


@dataclass
class State:
    """A query as the scheduler reports it, with every figure known."""

    collector: str = "connections"
    name: str = "q"
    interval: float = 60.0
    window: float | None = 300.0
    up: bool = True
    last_success: float | None = 1.0
    last_duration: float | None = 0.5
    series: int = 3
    serving_stale: bool = False
    rows: int | None = 4
    group_by_unresolved: tuple[tuple[str, bool], ...] = (("client_service", False),)


def served_self_metrics() -> dict[str, tuple[str, str, set[str]]]:
    """name -> (help, type, label names) of every self-metric, each label set touched."""
    metrics = SelfMetrics()
    view = RateLimitView("default", "connections", 100, 50, 3600.0, None)
    metrics.watch(lambda: [view])
    loop = asyncio.new_event_loop()
    try:
        metrics.watch_loop(loop)
        metrics.count_response("connections", "200")
        metrics.show_query(State())
        metrics.poll_failed(("connections", "q"), "timeout")
        metrics.set_shard(0, 1, 1, 1)
        metrics.config_loaded(True, 1.0)
        metrics.scrape_rejected()
        text = metrics.render().decode()
    finally:
        loop.close()
    served = {}
    for family in text_string_to_metric_families(text):
        labels = {name for sample in family.samples for name in sample.labels}
        served[family.name] = (family.documentation, family.type, labels)
    return served


def test_self_metric_declarations_are_what_metrics_serves() -> None:
    """Each declared self-metric is served with its declared help, type and labels, and
    nothing is served that is not declared."""
    served = served_self_metrics()
    declared = {family.name: family for family in SELF_FAMILIES}
    if not sys.platform.startswith("linux"):  # prometheus_client's process metrics: Linux only
        declared = {n: f for n, f in declared.items() if f not in PROCESS_FAMILIES}
    assert set(served) == set(declared)
    for name, family in declared.items():
        assert served[name] == (family.help, family.type, set(family.labels)), name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only in prometheus_client")
def test_declared_process_families_are_prometheus_clients() -> None:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    served = {(f.name, f.documentation, f.type) for f in registry.collect()}
    assert served == {(f.name, f.help, f.type) for f in PROCESS_FAMILIES}


def test_counters_are_named_total_and_nothing_else_is() -> None:
    for family in SELF_FAMILIES:
        assert sample_name(family).endswith("_total") == (family.type == "counter"), family.name
