"""The official datadog-api-client (2.62.0) deserializes everything the simulator serves.

Its typed models are the schema: if they accept the simulator's answers
(enum values, required fields, types), the simulator speaks the real wire format.
The client is synchronous, so it runs in a thread while the simulator serves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException, ForbiddenException
from datadog_api_client.model_utils import OpenApiModel, UnparsedObject
from datadog_api_client.v1.api.authentication_api import AuthenticationApi
from datadog_api_client.v2.api.case_management_api import CaseManagementApi
from datadog_api_client.v2.api.cloud_network_monitoring_api import CloudNetworkMonitoringApi
from datadog_api_client.v2.api.network_health_insights_api import NetworkHealthInsightsApi
from datadog_api_client.v2.api.rum_audience_management_api import RumAudienceManagementApi
from datadog_api_client.v2.model.case_aggregate_group_by import CaseAggregateGroupBy
from datadog_api_client.v2.model.case_aggregate_request import CaseAggregateRequest
from datadog_api_client.v2.model.case_aggregate_request_attributes import (
    CaseAggregateRequestAttributes,
)
from datadog_api_client.v2.model.case_aggregate_request_data import CaseAggregateRequestData
from datadog_api_client.v2.model.case_aggregate_resource_type import CaseAggregateResourceType

from exporter.collectors.audience import AudienceJob
from exporter.collectors.cases import CasesJob
from exporter.collectors.dns import DnsJob
from exporter.collectors.network_health import NetworkHealthJob
from exporter.collectors.protocol import ApiRequest
from exporter.config.schema import AudienceQuery, CasesQuery, DnsQuery, NetworkHealthQuery
from simulator import Fault, Simulator, SimulatorOptions
from simulator.data import TRICKY_SERVICES
from simulator.options import CasesMultiGroup, Scenario
from tests.helpers import parse_metrics, render_body, rendered_text

from .support import AUTH

pytestmark = pytest.mark.filterwarnings("ignore:Using unstable operation:UserWarning")

ALL_CONNECTION_FIELDS = ",".join(
    [
        "client_service",
        "server_service",
        "client_team",
        "server_team",
        "client_env",
        "client_availability_zone",
        "server_kube_namespace",
        "network.client.ip",
        "network.server.port",
        "my_custom_tag",
    ]
)


def unparsed_paths(obj: Any, path: str = "$") -> list[str]:
    """Where the client fell back to an "unparsed" object (it does not raise on those)."""
    if isinstance(obj, UnparsedObject):
        return [path]
    found: list[str] = []
    if isinstance(obj, OpenApiModel):
        if obj._unparsed:
            found.append(path)
        for key, value in obj._data_store.items():
            found += unparsed_paths(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found += unparsed_paths(value, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for key, value in obj.items():
            found += unparsed_paths(value, f"{path}.{key}")
    return found


def assert_parsed(answer: Any) -> None:
    assert unparsed_paths(answer) == []


@pytest.fixture
def client(sim: Simulator) -> Iterator[ApiClient]:
    configuration = Configuration(host=sim.url)
    configuration.api_key["apiKeyAuth"] = "sim-api-key"
    configuration.api_key["appKeyAuth"] = "sim-app-key"
    configuration.unstable_operations["list_connections"] = True
    configuration.unstable_operations["list_network_health_insights"] = True
    configuration.enable_retry = False
    with ApiClient(configuration) as api_client:
        yield api_client


def case_request(groups: list[str], query_filter: str = "") -> CaseAggregateRequest:
    return CaseAggregateRequest(
        data=CaseAggregateRequestData(
            attributes=CaseAggregateRequestAttributes(
                group_by=CaseAggregateGroupBy(groups=groups, limit=1000),
                query_filter=query_filter,
            ),
            type=CaseAggregateResourceType.AGGREGATE,
        )
    )


async def test_client_decodes_connections_with_tricky_values_and_ten_fields(
    client: ApiClient,
) -> None:
    api = CloudNetworkMonitoringApi(client)
    answer = await asyncio.to_thread(
        api.get_aggregated_connections,
        group_by="client_service,server_service",
        limit=7500,
    )
    assert_parsed(answer)
    rows = answer.data
    services = {value for row in rows for value in row.attributes.group_bys["client_service"]}
    assert set(TRICKY_SERVICES) <= services
    assert "N/A" in {v for row in rows for v in row.attributes.group_bys["server_service"]}
    assert all(str(row.type) == "aggregated_connection" for row in rows)
    wide = await asyncio.to_thread(
        api.get_aggregated_connections, group_by=ALL_CONNECTION_FIELDS, limit=7500
    )
    assert_parsed(wide)
    assert wide.data
    assert all(len(row.attributes.group_bys) == 10 for row in wide.data)


async def test_client_decodes_rows_with_several_values_for_one_key(client: ApiClient) -> None:
    api = CloudNetworkMonitoringApi(client)
    answer = await asyncio.to_thread(
        api.get_aggregated_connections, group_by="client_team", limit=7500
    )
    assert_parsed(answer)
    multi = [row for row in answer.data if len(row.attributes.group_bys["client_team"]) > 1]
    assert multi, "expected at least one row carrying several client_team values"


async def test_client_decodes_dns_default_and_multi_field_groups(client: ApiClient) -> None:
    api = CloudNetworkMonitoringApi(client)
    default = await asyncio.to_thread(api.get_aggregated_dns)
    assert_parsed(default)
    assert default.data
    assert {g.key for row in default.data for g in row.attributes.group_bys} == {
        "network.dns_query"
    }
    assert all(str(row.type) == "aggregated_dns" for row in default.data)
    keys = {str(m.key) for row in default.data for m in row.attributes.metrics}
    assert "dns_total_requests" in keys and "dns_responses.nxdomain" in keys
    multi = await asyncio.to_thread(
        api.get_aggregated_dns,
        group_by="network.dns_query,client_service,client_team,server_ungrouped",
        limit=7500,
    )
    assert_parsed(multi)
    assert any(
        len([g for g in row.attributes.group_bys if g.key == "client_team"]) > 1
        for row in multi.data
    )


@pytest.mark.parametrize("mode", ["combined", "facets", "first_field"])
async def test_client_decodes_case_aggregates_for_every_multi_group_mode(
    mode: CasesMultiGroup,
) -> None:
    simulator = Simulator(SimulatorOptions(cases_multi_group=mode))
    await simulator.start()
    try:
        configuration = Configuration(host=simulator.url)
        configuration.api_key["apiKeyAuth"] = "sim-api-key"
        configuration.api_key["appKeyAuth"] = "sim-app-key"
        with ApiClient(configuration) as api_client:
            api = CaseManagementApi(api_client)
            single = await asyncio.to_thread(api.aggregate_cases, case_request(["status"]))
            several = await asyncio.to_thread(
                api.aggregate_cases, case_request(["status", "priority", "project"])
            )
    finally:
        await simulator.stop()
    assert_parsed(single)
    assert_parsed(several)
    assert {g.group for g in single.data.attributes.groups} == {"OPEN", "IN_PROGRESS", "CLOSED"}
    assert sum(g.value[0] for g in single.data.attributes.groups) == single.data.attributes.total
    assert several.data.attributes.groups
    assert several.data.type == "aggregate"


async def test_client_decodes_case_filter(client: ApiClient) -> None:
    api = CaseManagementApi(client)
    answer = await asyncio.to_thread(
        api.aggregate_cases, case_request(["priority"], "service:case-api AND status:OPEN")
    )
    everything = await asyncio.to_thread(api.aggregate_cases, case_request(["priority"]))
    assert_parsed(answer)
    assert 0 < answer.data.attributes.total < everything.data.attributes.total


@pytest.mark.parametrize("entity", ["users", "accounts"])
async def test_client_decodes_audience_connections(client: ApiClient, entity: str) -> None:
    api = RumAudienceManagementApi(client)
    answer = await asyncio.to_thread(api.list_connections, entity)
    assert_parsed(answer)
    assert str(answer.data.type) == "list_connections_response"
    connections = answer.data.attributes.connections
    assert len(connections) >= 2
    if entity == "users":
        created = [c.created_at for c in connections]
        assert datetime(1, 1, 1, tzinfo=UTC) in created
        assert any("updated_at" not in c for c in connections)


async def test_client_reports_unknown_audience_entity_as_404(client: ApiClient) -> None:
    api = RumAudienceManagementApi(client)
    with pytest.raises(ApiException) as raised:
        await asyncio.to_thread(api.list_connections, "planets")
    assert raised.value.status == 404


async def test_client_reports_wrong_keys_as_403(sim: Simulator) -> None:
    configuration = Configuration(host=sim.url)
    configuration.api_key["apiKeyAuth"] = "wrong"
    configuration.api_key["appKeyAuth"] = "sim-app-key"
    with ApiClient(configuration) as api_client:
        api = CloudNetworkMonitoringApi(api_client)
        with pytest.raises(ApiException) as raised:
            await asyncio.to_thread(api.get_aggregated_connections)
    assert raised.value.status == 403


@pytest.mark.parametrize(
    "row",
    [
        {"type": "not_dns"},
        {"type": "aggregated_dns", "attributes": {"metrics": [{"key": "made_up", "value": 1}]}},
        {
            "type": "aggregated_dns",
            "attributes": {"metrics": [{"key": "dns_timeouts", "value": "1"}]},
        },
    ],
)
async def test_oracle_flags_wrong_values_so_the_contract_tests_can_fail(
    sim: Simulator, client: ApiClient, row: dict[str, Any]
) -> None:
    sim.set_fault("dns", Fault(kind="wrong_shape", body={"data": [row]}, count=1))
    answer = await asyncio.to_thread(CloudNetworkMonitoringApi(client).get_aggregated_dns)
    assert unparsed_paths(answer) != []


def test_exporter_case_request_body_is_what_the_official_model_sends() -> None:
    job = CasesJob(
        CasesQuery(name="q", group_by=["status", "priority"], query_filter="project:NET", limit=14)
    )
    official = CaseAggregateRequest(
        data=CaseAggregateRequestData(
            attributes=CaseAggregateRequestAttributes(
                group_by=CaseAggregateGroupBy(groups=["status", "priority"], limit=14),
                query_filter="project:NET",
            ),
            type=CaseAggregateResourceType.AGGREGATE,
        )
    )
    assert job.request(now=0).json_body == official.to_dict()


async def test_answers_to_the_exporters_own_requests_decode_in_both(
    sim: Simulator, client: ApiClient
) -> None:
    """The official client and the exporter read the same answers to the exporter's requests."""
    dns = DnsJob(DnsQuery(name="d", group_by=["network.dns_query", "client_service"], limit=500))
    dns_request = dns.request(now=time.time())
    params = dict(dns_request.params)
    dns_answer = await asyncio.to_thread(
        CloudNetworkMonitoringApi(client).get_aggregated_dns,
        _from=int(params["from"]),
        to=int(params["to"]),
        group_by=params["group_by"],
        limit=int(params["limit"]),
    )
    assert_parsed(dns_answer)
    rendered = parse_metrics(rendered_text(render_body(dns, await fetch_raw(sim, dns_request))))
    exported = sorted(v for (name, _), v in rendered.items() if name == "datadog_dns_requests")
    official_totals = sorted(
        m.value
        for row in dns_answer.data
        for m in row.attributes.metrics
        if str(m.key) == "dns_total_requests"
    )
    assert exported == official_totals and len(exported) > 3

    cases = CasesJob(CasesQuery(name="c", group_by=["status", "priority", "project"]))
    body = cases.request(now=0).json_body
    groups = body["data"]["attributes"]["group_by"]
    official = await asyncio.to_thread(
        CaseManagementApi(client).aggregate_cases,
        case_request(groups["groups"], body["data"]["attributes"]["query_filter"]),
    )
    assert_parsed(official)
    rendered = parse_metrics(
        rendered_text(render_body(cases, await fetch_raw(sim, cases.request(0))))
    )
    assert rendered[("datadog_cases_all_groups", frozenset({("query", "c")}))] == (
        official.data.attributes.total
    )

    audience = AudienceJob(AudienceQuery.model_validate({"entity": "users"}))
    listed = await asyncio.to_thread(RumAudienceManagementApi(client).list_connections, "users")
    assert_parsed(listed)
    rendered = parse_metrics(
        rendered_text(render_body(audience, await fetch_raw(sim, audience.request(0))))
    )
    assert rendered[("datadog_audience_connections", frozenset({("entity", "users")}))] == len(
        listed.data.attributes.connections
    )


async def fetch_raw(sim: Simulator, request: ApiRequest) -> bytes:
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.request(
            request.method, sim.url + request.path, params=request.params, json=request.json_body
        ) as response,
    ):
        assert response.status == 200
        return await response.read()


async def test_client_parses_the_key_validation_and_its_refusal(
    sim: Simulator, client: ApiClient
) -> None:
    api = AuthenticationApi(client)
    answer = await asyncio.to_thread(api.validate)
    assert_parsed(answer)
    assert answer.valid is True
    configuration = Configuration(host=sim.url)
    configuration.api_key["apiKeyAuth"] = "not-the-key"
    configuration.enable_retry = False
    with ApiClient(configuration) as wrong, pytest.raises(ForbiddenException) as caught:
        await asyncio.to_thread(AuthenticationApi(wrong).validate)
    assert caught.value.status == 403


async def test_client_decodes_network_health_insights_with_every_scenario(
    sim: Simulator, client: ApiClient
) -> None:
    """Every category, failure type and attribute the simulator serves is in the official
    model, including what its three scenarios add (a new security-group denial, a DNS burst,
    an expired certificate)."""
    for scenario in (
        Scenario("nhi_dns_failure_burst", {"client_service": "checkout"}, 40.0),
        Scenario("nhi_security_group_denial", {"client_service": "batch", "server_service": "db"}),
        # one day left three days ago: expired two days ago
        Scenario(
            "nhi_certificate_expiry",
            {"domain_name": "shop.example.com"},
            1.0,
            start=int(time.time()) - 3 * 86400,
        ),
    ):
        sim.set_scenario(scenario)
    api = NetworkHealthInsightsApi(client)
    answer = await asyncio.to_thread(api.list_network_health_insights)
    assert_parsed(answer)
    attributes = [insight.attributes for insight in answer.data]
    assert {str(a.type) for a in attributes} == {"dns", "tcp", "tls-cert", "security-group"}
    assert {"expired", "expiring_soon", "denied", "nxdomain"} <= {
        str(a.failure_type) for a in attributes
    }
    assert all(str(insight.type) == "network-health-insights" for insight in answer.data)


@pytest.mark.parametrize(
    "attributes",
    [{"type": "udp"}, {"failure_type": "refused"}, {"failure_magnitude": "3"}],
)
async def test_oracle_flags_wrong_insights_so_the_contract_test_can_fail(
    sim: Simulator, client: ApiClient, attributes: dict[str, Any]
) -> None:
    row = {"id": "x", "type": "network-health-insights", "attributes": attributes}
    sim.set_fault("network_health", Fault(kind="wrong_shape", body={"data": [row]}, count=1))
    api = NetworkHealthInsightsApi(client)
    answer = await asyncio.to_thread(api.list_network_health_insights)
    assert unparsed_paths(answer) != []


async def test_network_health_answers_to_the_exporters_request_decode_in_both(
    sim: Simulator, client: ApiClient
) -> None:
    """The exporter sends from/to as the official client does (strings of Unix seconds), and
    exports the failures and certificate expiries the official model reads."""
    job = NetworkHealthJob(NetworkHealthQuery(name="n", window=600.0, delay=120.0))
    request = job.request(now=time.time())
    official = await asyncio.to_thread(
        NetworkHealthInsightsApi(client).list_network_health_insights,
        _from=request.params["from"],
        to=request.params["to"],
    )
    assert_parsed(official)
    logged = sim.requests_to("network_health")[-1].query
    assert logged == request.params  # what the official client put on the wire
    rendered = parse_metrics(rendered_text(render_body(job, await fetch_raw(sim, request))))
    exported = sorted(
        v for (name, _), v in rendered.items() if name == "datadog_network_health_failures"
    )
    attributes = [insight.attributes for insight in official.data]
    assert exported == sorted(a.failure_magnitude for a in attributes if "failure_magnitude" in a)
    expiries = {
        dict(labels)["domain"]: v
        for (name, labels), v in rendered.items()
        if name == "datadog_network_health_certificate_expiry_seconds"
    }
    assert expiries == {
        a.domain_name: a.days_until_expiration * 86400
        for a in attributes
        if str(a.type) == "tls-cert"
    }
