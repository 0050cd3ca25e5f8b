"""Hostile answers, collector by collector: whatever a body holds, decoding ends in the
collector's own DecodeError or in text Prometheus reads; a number Prometheus cannot read
costs only its own sample, and is counted."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from exporter.app import build_jobs
from exporter.collectors.protocol import DecodeError, QueryJob
from exporter.collectors.registry import BY_SECTION
from exporter.config.schema import parse_config
from tests.helpers import SampleKey, parse_metrics, render_body, rendered_text, require_tool

CONFIG = """
connections:
  - {name: pairs, group_by: [client_service]}
dns:
  - {name: lookups, group_by: [network.dns_query]}
cases:
  - {name: by_status, group_by: [status]}
audience:
  - {name: users, entity: users}
network_health:
  - {name: insights}
"""
JOBS: dict[str, QueryJob] = {job.collector: job for job in build_jobs(parse_config(CONFIG))}


def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + b"1" + closer * depth


DEEP = nested(5000, b'{"k":', b"}")
HOSTILE_BODIES: dict[str, list[bytes]] = {
    "connections": [
        b'{"data":[{"attributes":{"group_bys":' + DEEP + b',"tcp_resets":1}}]}',
        b'{"data":[{"attributes":{"tcp_resets":1},"unknown":' + DEEP + b"}]}",
        b'{"data":[{"attributes":{"group_bys":{"client_service":["\xff\xfe"]},"tcp_resets":1}}]}',
        b'{"data":[{"attributes":{"group_bys":{"\xff":["a"]},"tcp_resets":1}}]}',
        b'{"data":[{"attributes":{"group_bys":{"client_service":[' + b"9" * 400 + b"]}}}]}",
        b'{"data":[{"attributes":{"tcp_resets":' + nested(100_000) + b"}}]}",
        b'{"data":[{"attributes":{"rtt_micro_seconds":"12"}}]}',
        b'{"data":[{"attributes":{"rtt_micro_seconds":' + nested(100_000) + b"}}]}",
    ],
    "dns": [
        b'{"data":[{"attributes":{"metrics":[]},"unknown":' + DEEP + b"}]}",
        b'{"data":[{"attributes":{"group_bys":[{"key":"network.dns_query","value":"\xff"}],'
        b'"metrics":[{"key":"dns_timeouts","value":1}]}}]}',
        b'{"data":[{"attributes":{"metrics":[{"key":"dns_timeouts","value":' + DEEP + b"}]}}]}",
        b'{"data":[{"attributes":{"metrics":[{"key":"\xc3","value":1}]}}]}',
    ],
    "cases": [
        b'{"data":{"attributes":{"total":1},"unknown":' + DEEP + b"}}",
        b'{"data":{"attributes":{"groups":[{"group":"\xff","value":[1]}]}}}',
        b'{"data":{"attributes":{"groups":[{"group":"a","value":[' + DEEP + b"]}]}}}",
        b'{"data":{"attributes":{"groups":[{"group":"a","value":[null]}]}}}',
    ],
    "audience": [
        b'{"data":{"attributes":{"connections":[{"id":"a","fields":[' + DEEP + b"]}]}}}",
        b'{"data":{"attributes":{"connections":[{"id":"\xff"}]}}}',
    ],
    "network_health": [
        b'{"data":[' + DEEP + b"]}",
        b'{"data":[{"attributes":{"type":"dns"},"unknown":' + DEEP + b"}]}",
        b'{"data":[{"attributes":{"client_service":"\xff","failure_magnitude":1}}]}',
        b'{"data":[{"attributes":{"failure_rate":' + nested(100_000) + b"}}]}",
        b'{"data":{"attributes":{"type":"dns"}}}',
    ],
}


@pytest.mark.parametrize(
    ("collector", "body"),
    [(collector, body) for collector, bodies in HOSTILE_BODIES.items() for body in bodies],
    ids=[
        f"{collector}-{i}"
        for collector, bodies in HOSTILE_BODIES.items()
        for i in range(len(bodies))
    ],
)
def test_deep_nesting_bytes_not_utf8_and_mistyped_values_are_decode_errors(
    collector: str, body: bytes
) -> None:
    """RecursionError, msgspec's own errors and the like never escape a decoder."""
    with pytest.raises(DecodeError, match=f"unexpected {collector} answer"):
        render_body(JOBS[collector], body)


# JSON numbers beyond float64's range: Prometheus' parser rejects them (promtool: "expected
# float as value"), so each must cost only its own sample.
UNREADABLE = [
    "9" * 400,
    "-" + "9" * 400,
    "1" + "0" * 309 + ".5",  # 1e309, written out
    str(2**1024 - 2**970),  # rounds to infinity
    "1e999",
    "-1e999",
    "1.7976931348623159e308",
]
# Just inside the range, or beyond it only in precision: kept.
READABLE = {
    "1" + "0" * 308: 1e308,
    str(2**1024 - 2**970 - 1): 1.7976931348623157e308,
    "1.7976931348623157e308": 1.7976931348623157e308,
    "0." + "0" * 400 + "1": 0.0,
    "1e-999": 0.0,
    "123456789012345678901234567890": 1.2345678901234568e29,
    "1" + "0" * 39: 1e39,  # long enough for connections' slow path, which keeps it
}


def connections_answer(value: str) -> tuple[bytes, SampleKey]:
    rows = []
    for name in ("a", "b", "c"):
        resets = value if name == "b" else "1"
        rows.append(
            f'{{"attributes":{{"group_bys":{{"client_service":["{name}"]}},'
            f'"tcp_resets":{resets},"tcp_timeouts":2,"rtt_micro_seconds":1500}}}}'
        )
    key = ("datadog_cnm_tcp_resets", frozenset({("query", "pairs"), ("client_service", "b")}))
    return ('{"data":[' + ",".join(rows) + "]}").encode(), key


def connections_rtt_answer(value: str) -> tuple[bytes, SampleKey]:
    body, _ = connections_answer("3")
    body = body.replace(
        b'"rtt_micro_seconds":1500}}]', f'"rtt_micro_seconds":{value}}}}}]'.encode()
    )
    key = ("datadog_cnm_tcp_rtt_seconds", frozenset({("query", "pairs"), ("client_service", "c")}))
    return body, key


def dns_answer(value: str) -> tuple[bytes, SampleKey]:
    rows = []
    for name in ("a", "b"):
        timeouts = value if name == "b" else "1"
        rows.append(
            f'{{"attributes":{{"group_bys":[{{"key":"network.dns_query","value":"{name}"}}],'
            f'"metrics":[{{"key":"dns_total_requests","value":5}},'
            f'{{"key":"dns_timeouts","value":{timeouts}}}]}}}}'
        )
    key = ("datadog_dns_timeouts", frozenset({("query", "lookups"), ("network_dns_query", "b")}))
    return ('{"data":[' + ",".join(rows) + "]}").encode(), key


def cases_answer(value: str) -> tuple[bytes, SampleKey]:
    body = (
        '{"data":{"attributes":{"total":7,"groups":['
        f'{{"group":"OPEN","value":[{value}]}},{{"group":"CLOSED","value":[3]}}]}}}}}}'
    )
    key = ("datadog_cases", frozenset({("query", "by_status"), ("status", "OPEN")}))
    return body.encode(), key


def cases_total_answer(value: str) -> tuple[bytes, SampleKey]:
    body = (
        f'{{"data":{{"attributes":{{"total":{value},"groups":['
        '{"group":"OPEN","value":[4]},{"group":"CLOSED","value":[3]}]}}}'
    )
    return body.encode(), ("datadog_cases_all_groups", frozenset({("query", "by_status")}))


def network_health_answer(value: str) -> tuple[bytes, SampleKey]:
    rows = []
    for name in ("a", "b"):
        failures = value if name == "b" else "1"
        rows.append(
            f'{{"attributes":{{"type":"tcp","failure_type":"timeout","client_service":"{name}",'
            f'"server_service":"db","failure_magnitude":{failures},"total_requests":9,'
            f'"failure_rate":1.5}}}}'
        )
    labels = {("query", "insights"), ("category", "tcp"), ("failure_type", "timeout")}
    labels |= {("client_service", "b"), ("server_service", "db")}
    key = ("datadog_network_health_failures", frozenset(labels))
    return ('{"data":[' + ",".join(rows) + "]}").encode(), key


ANSWERS: dict[str, tuple[str, Callable[[str], tuple[bytes, SampleKey]]]] = {
    "network_health": ("network_health", network_health_answer),
    "connections": ("connections", connections_answer),
    "connections_rtt": ("connections", connections_rtt_answer),
    "dns": ("dns", dns_answer),
    "cases": ("cases", cases_answer),
    "cases_total": ("cases", cases_total_answer),
}


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True
    )


@pytest.mark.parametrize("value", UNREADABLE)
@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_a_number_beyond_float64_costs_only_its_own_sample(answer: str, value: str) -> None:
    collector, make = ANSWERS[answer]
    body, bad = make(value)
    good, _ = make("4")
    expected = parse_metrics(rendered_text(render_body(JOBS[collector], good)))
    del expected[bad]

    rendered = render_body(JOBS[collector], body)
    text = rendered_text(rendered)
    lint = promtool_check(text)
    assert lint.returncode == 0, lint.stderr
    got = parse_metrics(text)
    assert got.keys() == expected.keys()  # every other sample of every other row is there
    assert rendered.invalid_values == 1
    assert rendered.series == len(got)


@pytest.mark.parametrize("value", sorted(READABLE))
@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_numbers_inside_float64_are_kept(answer: str, value: str) -> None:
    collector, make = ANSWERS[answer]
    body, key = make(value)
    rendered = render_body(JOBS[collector], body)
    text = rendered_text(rendered)
    lint = promtool_check(text)
    assert lint.returncode == 0, lint.stderr
    expected = READABLE[value] / (1e6 if answer == "connections_rtt" else 1)
    assert float(parse_metrics(text)[key]) == expected  # the parser keeps integers as int
    assert rendered.invalid_values == 0


def test_every_registered_collector_meets_hostile_answers() -> None:
    assert set(JOBS) == set(HOSTILE_BODIES) == set(BY_SECTION)


# Rows "a" (readable), "a" again and "c" with a number beyond float64, "b" readable: the
# duplicate is never rendered, and with max_series 2 neither is anything from "b" on.
def _connections_rows(values: list[tuple[str, str]]) -> bytes:
    rows = [
        f'{{"attributes":{{"group_bys":{{"client_service":["{name}"]}},'
        f'"tcp_resets":{value},"tcp_timeouts":2}}}}'
        for name, value in values
    ]
    return ('{"data":[' + ",".join(rows) + "]}").encode()


def _dns_rows(values: list[tuple[str, str]]) -> bytes:
    rows = [
        f'{{"attributes":{{"group_bys":[{{"key":"network.dns_query","value":"{name}"}}],'
        f'"metrics":[{{"key":"dns_total_requests","value":5}},'
        f'{{"key":"dns_timeouts","value":{value}}}]}}}}'
        for name, value in values
    ]
    return ('{"data":[' + ",".join(rows) + "]}").encode()


def _cases_groups(values: list[tuple[str, str]]) -> bytes:
    groups = [f'{{"group":"{name}","value":[{value}]}}' for name, value in values]
    return ('{"data":{"attributes":{"total":7,"groups":[' + ",".join(groups) + "]}}}").encode()


ROWS: dict[str, Callable[[list[tuple[str, str]]], bytes]] = {
    "connections": _connections_rows,
    "dns": _dns_rows,
    "cases": _cases_groups,
}
CAPPED = """
connections:
  - {name: pairs, group_by: [client_service], max_series: %(max)d}
dns:
  - {name: lookups, group_by: [network.dns_query], max_series: %(max)d}
cases:
  - {name: by_status, group_by: [status], max_series: %(max)d}
"""


@pytest.mark.parametrize("collector", sorted(ROWS))
def test_unreadable_numbers_count_only_in_the_rows_rendered(collector: str) -> None:
    body = ROWS[collector]([("a", "1"), ("a", "1e999"), ("b", "3"), ("c", "1e999")])
    for max_series, invalid, dropped in ((2, 0, 2), (100, 1, 0)):
        (job,) = (
            job
            for job in build_jobs(parse_config(CAPPED % {"max": max_series}))
            if job.collector == collector
        )
        rendered = render_body(job, body)
        assert (rendered.invalid_values, rendered.dropped_rows) == (invalid, dropped)
        rows = {
            value
            for _, labels in parse_metrics(rendered_text(rendered))
            for name, value in labels
            if name in ("client_service", "network_dns_query", "status")
        }
        assert rows == ({"a"} if max_series == 2 else {"a", "b", "c"}) - (
            {"c"} if collector == "cases" else set()
        )
