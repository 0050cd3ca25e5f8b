"""Network Health Insights become failure, traffic and certificate series: per category,
failure type and service pair, and per certificate's domain; a field of the wrong type costs
its sample, never the answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from exporter.collectors.network_health import NetworkHealthJob
from exporter.collectors.protocol import DecodeError
from exporter.config.schema import NetworkHealthQuery
from exporter.exposition import Rendered
from tests.helpers import parse_metrics, render_body, rendered_text
from tests.unit.collectors.support import UNPARSABLE_BODIES, json_values, renders_or_fails_cleanly


def job(**settings: Any) -> NetworkHealthJob:
    return NetworkHealthJob(NetworkHealthQuery.model_validate({"name": "nhi", **settings}))


JOB = job()


def answer(*attributes: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "data": [
                {"id": f"i{n}", "type": "network-health-insights", "attributes": a}
                for n, a in enumerate(attributes)
            ]
        }
    ).encode()


def rendered(body: bytes, query: NetworkHealthJob = JOB) -> Rendered:
    return render_body(query, body)


def served(body: bytes, query: NetworkHealthJob = JOB) -> dict[Any, float]:
    return parse_metrics(rendered_text(rendered(body, query)))


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset({("query", "nhi"), *pairs.items()})


DNS = {
    "type": "dns",
    "failure_type": "nxdomain",
    "client_service": "checkout",
    "server_service": "coredns",
    "failure_magnitude": 30,
    "failure_rate": 2.5,
    "total_requests": 1200,
    "traffic_volume": {"bytes_read": 100, "bytes_written": 200, "total_traffic": 300},
    "dns_query": "does-not-exist.internal",
    "dns_server": "10.2.0.1",
}
DNS_PAIR = labels(
    category="dns", failure_type="nxdomain", client_service="checkout", server_service="coredns"
)
CERT = {
    "type": "tls-cert",
    "failure_type": "expiring_soon",
    "client_service": "frontend",
    "server_service": "api-gateway",
    "domain_name": "shop.example.com",
    "certificate_id": "arn:aws:acm:us-east-1:1:certificate/a",
    "days_until_expiration": 13,
    "certificate_lifetime_percent": 85.5,
    "account_id": "1",
    "client_region": "us-east-1",
    "server_region": "eu-west-1",
    "loadbalancer_id": "arn:lb/a",
}
CERT_PAIR = labels(
    domain="shop.example.com", client_service="frontend", server_service="api-gateway"
)


def test_failures_become_ratios_totals_and_traffic_in_base_units() -> None:
    assert served(answer(DNS)) == {
        ("datadog_network_health_failure_ratio", DNS_PAIR): 0.025,
        ("datadog_network_health_failures", DNS_PAIR): 30,
        ("datadog_network_health_requests", DNS_PAIR): 1200,
        ("datadog_network_health_read_bytes", DNS_PAIR): 100,
        ("datadog_network_health_written_bytes", DNS_PAIR): 200,
        ("datadog_network_health_traffic_bytes", DNS_PAIR): 300,
        (
            "datadog_network_health_insight_info",
            DNS_PAIR | {("dns_query", "does-not-exist.internal"), ("dns_server", "10.2.0.1")},
        ): 1,
    }


def test_certificates_give_seconds_to_expiry_and_lifetime_used_by_domain_not_id() -> None:
    got = served(answer(CERT))
    assert got[("datadog_network_health_certificate_expiry_seconds", CERT_PAIR)] == 13 * 86400
    assert got[("datadog_network_health_certificate_lifetime_used_ratio", CERT_PAIR)] == 0.855
    info = CERT_PAIR | {
        ("certificate_id", CERT["certificate_id"]),
        ("account_id", "1"),
        ("client_region", "us-east-1"),
        ("server_region", "eu-west-1"),
        ("loadbalancer_id", "arn:lb/a"),
    }
    assert got[("datadog_network_health_certificate_info", info)] == 1
    value_labels = {
        dict(key)["domain"]: key
        for name, key in got
        if name.startswith("datadog_network_health_certificate_") and not name.endswith("_info")
    }
    assert all(
        ("certificate_id", CERT["certificate_id"]) not in key for key in value_labels.values()
    )


def test_an_expired_certificate_is_a_negative_time() -> None:
    got = served(answer({**CERT, "days_until_expiration": -2, "failure_type": "expired"}))
    assert got[("datadog_network_health_certificate_expiry_seconds", CERT_PAIR)] == -2 * 86400


def test_certificate_id_label_puts_the_id_on_value_series_one_set_per_certificate() -> None:
    other = {**CERT, "certificate_id": "b", "days_until_expiration": 40}
    with_id = job(certificate_id_label=True)
    got = served(answer(CERT, other), with_id)
    expiry = {
        dict(key)["certificate_id"]: value
        for (name, key), value in got.items()
        if name == "datadog_network_health_certificate_expiry_seconds"
    }
    assert expiry == {CERT["certificate_id"]: 13 * 86400, "b": 40 * 86400}
    # Without it the two are one set: the soonest expiry, the most lifetime used.
    without = served(answer(other, CERT))
    assert without[("datadog_network_health_certificate_expiry_seconds", CERT_PAIR)] == 13 * 86400


def test_insights_of_one_pair_are_summed_and_the_worst_ratio_kept() -> None:
    second = {**DNS, "dns_query": "other.internal", "failure_magnitude": 5, "failure_rate": 10.0}
    second["total_requests"] = 50
    got = served(answer(DNS, second))
    assert got[("datadog_network_health_failures", DNS_PAIR)] == 35
    assert got[("datadog_network_health_requests", DNS_PAIR)] == 1250
    assert got[("datadog_network_health_failure_ratio", DNS_PAIR)] == 0.1
    infos = [key for name, key in got if name == "datadog_network_health_insight_info"]
    assert {dict(key)["dns_query"] for key in infos} == {
        "does-not-exist.internal",
        "other.internal",
    }


def test_absent_values_give_no_sample_and_absent_labels_are_empty() -> None:
    got = served(answer({"type": "tcp", "failure_magnitude": 3}))
    pair = labels(category="tcp", failure_type="", client_service="", server_service="")
    assert got[("datadog_network_health_failures", pair)] == 3
    assert ("datadog_network_health_requests", pair) not in got
    assert ("datadog_network_health_failure_ratio", pair) not in got


_TRAFFIC = tuple(f"datadog_network_health_{name}_bytes" for name in ("read", "written", "traffic"))


@pytest.mark.parametrize(
    ("field", "value", "lost"),
    [
        ("failure_rate", "2.5", ("datadog_network_health_failure_ratio",)),
        ("failure_magnitude", {"n": 30}, ("datadog_network_health_failures",)),
        ("total_requests", True, ("datadog_network_health_requests",)),
        ("total_requests", 1e999, ("datadog_network_health_requests",)),
        ("traffic_volume", [1, 2], _TRAFFIC),
    ],
)
def test_a_number_of_the_wrong_type_costs_its_sample_only(
    field: str, value: Any, lost: tuple[str, ...]
) -> None:
    body = answer({**DNS, field: value}, CERT).replace(b"Infinity", b"1e999")
    good = served(answer(DNS, CERT))
    result = rendered(body)
    got = parse_metrics(rendered_text(result))
    expected = {key: v for key, v in good.items() if not (key[0] in lost and key[1] == DNS_PAIR)}
    assert got == expected
    assert result.invalid_values == len(lost)
    assert result.series == len(got)


def test_a_certificate_field_of_the_wrong_type_costs_its_sample_only() -> None:
    result = rendered(answer({**CERT, "days_until_expiration": "13"}))
    got = parse_metrics(rendered_text(result))
    assert ("datadog_network_health_certificate_expiry_seconds", CERT_PAIR) not in got
    assert got[("datadog_network_health_certificate_lifetime_used_ratio", CERT_PAIR)] == 0.855
    assert result.invalid_values == 1


def test_a_label_of_the_wrong_type_costs_its_insight_only() -> None:
    result = rendered(answer({**DNS, "client_service": 7}, CERT))
    got = parse_metrics(rendered_text(result))
    assert not [key for key in got if key[0] == "datadog_network_health_failures"]
    assert got[("datadog_network_health_certificate_expiry_seconds", CERT_PAIR)] == 13 * 86400
    assert result.invalid_values == 1
    assert result.rows == 2


def test_an_insight_that_is_not_an_object_costs_itself_only() -> None:
    body = b'{"data":[5,' + answer(DNS)[len(b'{"data": [') :]
    result = rendered(body)
    assert parse_metrics(rendered_text(result))[("datadog_network_health_failures", DNS_PAIR)] == 30
    assert result.invalid_values == 1


def test_categories_leave_out_the_others_and_rows_count_the_kept() -> None:
    only_certs = job(categories=["tls-cert"])
    result = rendered(
        answer(DNS, CERT, {"type": "security-group", "failure_magnitude": 1}), only_certs
    )
    names = {name for name, _ in parse_metrics(rendered_text(result))}
    assert "datadog_network_health_failures" not in names
    assert "datadog_network_health_certificate_expiry_seconds" in names
    assert result.rows == 1


def test_an_empty_answer_renders_nothing_and_counts_no_rows() -> None:
    result = rendered(b'{"data":[]}')
    assert (result.families, result.series, result.rows) == ((), 0, 0)


def test_max_series_keeps_the_first_sets_whole_and_counts_the_rest() -> None:
    pairs = [{**DNS, "client_service": f"c{n}"} for n in range(5)]
    result = rendered(answer(*pairs), job(max_series=16))
    got = parse_metrics(rendered_text(result))
    # each pair: six value series and one info series
    assert {dict(key)["client_service"] for _, key in got} == {"c0", "c1"}
    assert result.dropped_rows == 3
    assert result.series == len(got) == 14


def test_the_request_asks_for_the_window_before_the_delay_as_strings() -> None:
    request = job(window="10m", delay="2m").request(1_000_000.7)
    assert request.path == "/api/v2/network-health-insights"
    assert request.params == {"from": str(1_000_000 - 120 - 600), "to": str(1_000_000 - 120)}


def test_the_window_is_reported_for_the_window_family() -> None:
    assert job(window="10m").window == 600.0
    assert JOB.window == 300.0  # the CNM collectors' default, not Datadog's 15m


@pytest.mark.parametrize("body", [*UNPARSABLE_BODIES, b'{"data":{}}', b'{"data":"x"}', b"{}"])
def test_unusable_bodies_are_decode_errors(body: bytes) -> None:
    with pytest.raises(DecodeError, match="unexpected network_health answer"):
        rendered(body)


@settings(max_examples=200, deadline=None)
@given(document=json_values)
def test_any_json_renders_or_fails_cleanly(document: Any) -> None:
    renders_or_fails_cleanly(JOB, {"data": [document, {"attributes": document}]})
