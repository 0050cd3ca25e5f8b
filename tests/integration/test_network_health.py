"""Network Health Insights polled for real (client, scheduler, snapshot) against the
simulator: its scenarios become the series an alert reads, and an insight field of the wrong
type costs its sample while the query stays up."""

from __future__ import annotations

from exporter.collectors.network_health import NetworkHealthJob
from exporter.config.schema import NetworkHealthQuery
from exporter.scheduler import Scheduler
from simulator import Fault, Scenario, Simulator

from .conftest import deadline, served

JOB = NetworkHealthJob(NetworkHealthQuery(name="insights"))
KEY = (JOB.collector, JOB.name)
DENIED = {
    ("query", "insights"),
    ("category", "security-group"),
    ("failure_type", "denied"),
    ("client_service", "batch-jobs"),
    ("server_service", "kafka"),
}


async def test_scenarios_become_failure_ratios_and_certificate_expiry(
    polling: Scheduler, simulator: Simulator
) -> None:
    simulator.set_scenario(
        Scenario(
            "nhi_security_group_denial", {"client_service": "batch-jobs", "server_service": "kafka"}
        )
    )
    simulator.set_scenario(
        Scenario("nhi_certificate_expiry", {"domain_name": "api.example.com"}, 3.0)
    )
    await polling.add(JOB)
    await polling.poll_once(KEY, deadline(5))
    samples = served(polling)
    ratio = samples[("datadog_network_health_failure_ratio", frozenset(DENIED))]
    assert 0.04 <= ratio <= 0.06  # the simulator's 0.1 % times the default factor 50
    certificate = frozenset(
        {
            ("query", "insights"),
            ("domain", "api.example.com"),
            ("client_service", "api-gateway"),
            ("server_service", "checkout"),
        }
    )
    assert samples[("datadog_network_health_certificate_expiry_seconds", certificate)] == 3 * 86400
    up = (
        "datadog_exporter_up",
        frozenset({("collector", "network_health"), ("query", "insights")}),
    )
    assert samples[up] == 1


async def test_a_field_of_the_wrong_type_costs_its_sample_and_the_query_stays_up(
    polling: Scheduler, simulator: Simulator
) -> None:
    insight = {
        "type": "security-group",
        "failure_type": "denied",
        "client_service": "batch-jobs",
        "server_service": "kafka",
        "failure_rate": "5%",
        "failure_magnitude": 45,
        "total_requests": 900,
    }
    body = {"data": [{"id": "x", "type": "network-health-insights", "attributes": insight}]}
    simulator.set_fault("network_health", Fault(kind="wrong_shape", body=body, count=1))
    await polling.add(JOB)
    await polling.poll_once(KEY, deadline(5))
    samples = served(polling)
    labels = frozenset(DENIED)
    assert ("datadog_network_health_failure_ratio", labels) not in samples
    assert samples[("datadog_network_health_failures", labels)] == 45
    per_query = frozenset({("collector", "network_health"), ("query", "insights")})
    assert samples[("datadog_exporter_up", per_query)] == 1
    assert samples[("datadog_exporter_invalid_values_total", per_query)] == 1
