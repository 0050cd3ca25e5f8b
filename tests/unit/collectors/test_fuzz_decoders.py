"""Fuzzing every collector's decoder: anything Datadog could send either renders into text
that Prometheus' own parser reads back, or fails with DecodeError — never anything else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.app import build_jobs
from exporter.collectors.protocol import DecodeError, QueryJob
from exporter.collectors.registry import BY_SECTION
from exporter.config.schema import parse_config
from exporter.exposition import Rendered
from tests.helpers import Samples, parse_metrics, render_body

CONFIG = """
connections:
  - {name: pairs, group_by: [client_service, network.client.ip, query]}
dns:
  - {name: lookups, group_by: [network.dns_query, client_service]}
cases:
  - {name: by_status, group_by: [status, priority]}
audience:
  - {name: users, entity: users}
network_health:
  - {name: insights, certificate_id_label: true}
"""
JOBS: dict[str, QueryJob] = {job.collector: job for job in build_jobs(parse_config(CONFIG))}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Label values as Datadog might send them: anything Unicode, quotes, backslashes, newlines.
text = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["N/A", 'say "hi"', "back\\slash", "multi\nline", "", "東京", "🚀"]
)
numbers = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, -0.0, 1e308, 5e-324, 2**53 + 1])
)
scalars = st.none() | st.booleans() | numbers | text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=25,
)


def test_every_registered_collector_is_fuzzed() -> None:
    assert set(JOBS) == set(BY_SECTION)


def exposition(rendered: Rendered) -> str:
    return "".join(
        (item.family.header() + item.samples).decode("utf-8") for item in rendered.families
    )


def check(job: QueryJob, body: bytes) -> Samples:
    """Render ``body``; a DecodeError is fine, any other exception fails the test."""
    try:
        rendered = render_body(job, body)
    except DecodeError:
        return {}
    samples = parse_metrics(exposition(rendered))  # fails on a parse error or a duplicate
    assert len(samples) == rendered.series
    # Audience series are labelled by entity; every other collector's by query name.
    own = ("entity", "users") if job.collector == "audience" else ("query", job.name)
    assert all(own in labels for _, labels in samples)
    return samples


@pytest.mark.parametrize("collector", sorted(JOBS))
@FUZZ
@given(document=json_values)
def test_any_json_document_renders_or_raises_decode_error(collector: str, document: Any) -> None:
    check(JOBS[collector], json.dumps(document).encode())


@pytest.mark.parametrize("collector", sorted(JOBS))
@FUZZ
@given(body=st.binary(max_size=200))
def test_any_bytes_render_or_raise_decode_error(collector: str, body: bytes) -> None:
    check(JOBS[collector], body)


# Documents of the right shape with arbitrary values, so rendering really happens.
connections_rows = st.lists(
    st.fixed_dictionaries(
        {
            "attributes": st.fixed_dictionaries(
                {
                    "group_bys": st.dictionaries(
                        st.sampled_from(["client_service", "network.client.ip", "query", "x"]),
                        st.lists(text, max_size=3),
                    )
                },
                optional={"tcp_retransmits": numbers, "rtt_micro_seconds": numbers},
            )
        }
    ),
    max_size=6,
)
dns_rows = st.lists(
    st.fixed_dictionaries(
        {
            "attributes": st.fixed_dictionaries(
                {
                    "group_bys": st.lists(
                        st.fixed_dictionaries(
                            {
                                "key": st.sampled_from(["network.dns_query", "client_service"]),
                                "value": text,
                            }
                        ),
                        max_size=3,
                    ),
                    "metrics": st.lists(
                        st.fixed_dictionaries(
                            {
                                "key": st.sampled_from(
                                    ["dns_total_requests", "dns_timeouts", "bogus"]
                                ),
                                "value": numbers,
                            }
                        ),
                        max_size=3,
                    ),
                }
            )
        }
    ),
    max_size=6,
)
cases_answer = st.fixed_dictionaries(
    {
        "total": numbers,
        "groups": st.lists(
            st.fixed_dictionaries({"group": text, "value": st.lists(numbers, max_size=3)}),
            max_size=6,
        ),
    }
)
audience_answer = st.fixed_dictionaries(
    {
        "connections": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "id": text,
                    "type": text,
                    "join": st.fixed_dictionaries({}, optional={"attribute": text, "type": text}),
                    "fields": st.lists(json_values, max_size=3),
                    "created_at": text,
                    "updated_at": st.sampled_from(["0001-01-01T00:00:00Z", "2024-02-30T25:00:00Z"])
                    | text,
                },
            ),
            max_size=5,
        )
    }
)
# Every documented attribute, each of any JSON value now and then (a wrong type costs its
# sample, never the answer).
_NHI_TEXT = (
    "type",
    "failure_type",
    "client_service",
    "server_service",
    "dns_query",
    "dns_server",
    "domain_name",
    "certificate_id",
    "account_id",
    "loadbalancer_id",
)
_NHI_NUMBERS = (
    "failure_magnitude",
    "failure_rate",
    "total_requests",
    "days_until_expiration",
    "certificate_lifetime_percent",
)
network_health_rows = st.lists(
    st.fixed_dictionaries(
        {
            "attributes": st.fixed_dictionaries(
                {},
                optional={
                    **{
                        key: st.sampled_from(["dns", "tcp", "tls-cert"]) | text | json_values
                        for key in _NHI_TEXT
                    },
                    **{key: numbers | json_values for key in _NHI_NUMBERS},
                    "traffic_volume": st.fixed_dictionaries(
                        {}, optional={"bytes_read": numbers, "total_traffic": numbers}
                    )
                    | json_values,
                },
            )
        }
    )
    | json_values,
    max_size=6,
)
SHAPED = {
    "network_health": network_health_rows.map(lambda rows: {"data": rows}),
    "connections": connections_rows.map(lambda rows: {"data": rows}),
    "dns": dns_rows.map(lambda rows: {"data": rows}),
    "cases": cases_answer.map(
        lambda a: {"data": {"id": "x", "type": "aggregate", "attributes": a}}
    ),
    "audience": audience_answer.map(
        lambda a: {"data": {"type": "list_connections_response", "attributes": a}}
    ),
}


@pytest.mark.parametrize("collector", sorted(SHAPED))
@FUZZ
@given(data=st.data())
def test_well_shaped_answers_with_arbitrary_values_parse_back(collector: str, data: Any) -> None:
    document = data.draw(SHAPED[collector])
    check(JOBS[collector], json.dumps(document, ensure_ascii=False).encode())


@FUZZ
@given(values=st.lists(st.lists(text, min_size=1, max_size=3), min_size=1, max_size=5))
def test_connection_label_values_survive_the_round_trip(values: list[list[str]]) -> None:
    rows = [
        {"attributes": {"group_bys": {"client_service": v}, "tcp_retransmits": i}}
        for i, v in enumerate(values)
    ]
    samples = check(JOBS["connections"], json.dumps({"data": rows}).encode())
    served = {
        dict(labels).get("client_service", "")
        for name, labels in samples
        if name == "datadog_cnm_tcp_retransmits"
    }
    # Several values of one key join with ","; an empty value means the label is absent.
    assert served == {",".join(v) for v in values}
