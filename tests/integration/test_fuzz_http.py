"""Hostile answers at the HTTP boundary: whatever Datadog (or whatever stands in its place)
answers, the query keeps polling, /metrics stays readable by Prometheus, and the next good
answer is published.

Hypothesis makes the bodies: random bytes, strings that are not UTF-8, JSON of any shape and
up to 100,000 levels deep, huge strings and numbers, and well-shaped answers whose values are
all of these. The simulator's ``raw`` fault serves each one over real HTTP to the real client
and scheduler; every /metrics page is fetched over HTTP and read by ``promtool check metrics``
(Debian's Prometheus) and prometheus_client's parser.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from exporter.app import build_jobs
from exporter.catalog import exported_metric_names
from exporter.collectors.protocol import QueryJob
from exporter.collectors.registry import BY_SECTION
from exporter.config.schema import parse_config
from exporter.datadog.client import DatadogClient
from exporter.logs import Redactor
from exporter.scheduler import Scheduler
from exporter.selfmetrics import SelfMetrics
from exporter.server import ServerParts, create_app
from exporter.snapshot import SnapshotStore
from simulator import Simulator
from tests.helpers import SampleKey, parse_metrics, require_tool

from .conftest import credentials

pytestmark = pytest.mark.fuzz  # about a minute: a tier of its own

CONFIG = """
connections:
  - {name: pairs, group_by: [client_service, server_service], limit: 20}
dns:
  - {name: lookups, group_by: [network.dns_query, client_service], limit: 20}
cases:
  - {name: by_status, group_by: [status]}
audience:
  - {name: users, entity: users}
network_health:
  - {name: insights}
"""
JOBS: dict[str, QueryJob] = {job.collector: job for job in build_jobs(parse_config(CONFIG))}
MAX_RESPONSE_SIZE = 64 * 1024 * 1024  # the default: no hostile body here is "too large"
FUZZ = settings(
    max_examples=20,
    deadline=None,
    # Each example is two polls and two promtool runs over bodies of up to megabytes:
    # shrinking one would take many minutes. The failing example is printed as drawn.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the running stack is meant to outlive examples
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# -- bodies, as bytes: JSON text is built by hand so it can hold what json.dumps never writes


def _obj(fields: dict[str, bytes]) -> bytes:
    return b"{" + b",".join(json.dumps(k).encode() + b":" + v for k, v in fields.items()) + b"}"


def _array(items: list[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    # Beyond float64 (and just inside): long integers, long fractions, big exponents.
    st.from_regex(r"-?[1-9][0-9]{300,420}(\.[0-9]{1,30})?", fullmatch=True),
    st.from_regex(r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,400})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(
        [
            "1e999",
            "-1e999",
            "1e-999",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            str(2**1024 - 2**970),
            str(2**1024 - 2**970 - 1),
            "5e-324",
            "-0",
        ]
    ),
).map(str.encode)
strings = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=20).map(
        lambda s: json.dumps(s, ensure_ascii=False).encode()
    ),
    st.text(max_size=10).map(lambda s: json.dumps(s).encode()),  # \u escapes, lone surrogates
    # Bytes that are not UTF-8 (or are control characters) between quotes.
    st.binary(max_size=20).map(lambda b: b'"' + b.replace(b"\\", b"").replace(b'"', b"") + b'"'),
    st.sampled_from([b'"N/A"', b'"say \\"hi\\""', b'"back\\\\slash"', b'"multi\\nline"']),
)
# Where a label value belongs: any of those, or a string of up to a megabyte.
labels = strings | st.integers(min_value=0, max_value=1_000_000).map(
    lambda n: b'"' + b"s" * n + b'"'
)


@st.composite
def deep(draw: st.DrawFn) -> bytes:
    """A value nested up to 100,000 levels deep in arrays or objects."""
    depth = draw(st.integers(min_value=1, max_value=100_000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"k":', b"}")]))
    return opener * depth + draw(st.sampled_from([b"1", b'""', b"null"])) + closer * depth


leaves = st.sampled_from([b"null", b"true", b"false"]) | numbers | strings | deep()
any_json = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4).map(_array)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4).map(_obj)
    ),
    max_leaves=12,
)
# Where a number belongs: mostly a number, sometimes anything at all.
values = numbers | numbers | any_json


def _fields(required: dict[str, st.SearchStrategy[bytes]], **optional: Any) -> Any:
    return st.fixed_dictionaries(required, optional=optional).map(_obj)


def _rows(row: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.lists(row, max_size=5).map(lambda rows: _obj({"data": _array(rows)}))


_connections_row = _fields(
    {
        "attributes": _fields(
            {},
            group_bys=_fields(
                {}, client_service=st.lists(labels, max_size=3).map(_array), x=any_json
            )
            | any_json,
            bytes_sent_by_client=values,
            rtt_micro_seconds=values,
            tcp_retransmits=values,
            tcp_resets=numbers,
            unknown_field=any_json,
        )
    },
    id=strings,
)
_pair = _fields(
    {
        "key": st.sampled_from([b'"network.dns_query"', b'"client_service"']) | strings,
        "value": labels | any_json,
    }
)
_metric = _fields(
    {
        "key": st.sampled_from([b'"dns_total_requests"', b'"dns_timeouts"']) | strings,
        "value": values,
    }
)
_dns_row = _fields(
    {
        "attributes": _fields(
            {},
            group_bys=st.lists(_pair, max_size=3).map(_array) | any_json,
            metrics=st.lists(_metric, max_size=3).map(_array) | any_json,
            unknown_field=any_json,
        )
    },
    unknown_field=any_json,
)
_cases_answer = _fields(
    {
        "data": _fields(
            {
                "attributes": _fields(
                    {},
                    total=values,
                    groups=st.lists(
                        _fields(
                            {"group": labels, "value": st.lists(values, max_size=2).map(_array)}
                        ),
                        max_size=5,
                    ).map(_array)
                    | any_json,
                    unknown_field=any_json,
                )
            },
            id=strings,
        )
    }
)
_connection = _fields(
    {},
    id=labels,
    type=strings,
    join=_fields({}, attribute=strings, type=strings) | any_json,
    fields=st.lists(any_json, max_size=3).map(_array),
    created_at=strings,
    updated_at=st.sampled_from([b'"0001-01-01T00:00:00Z"', b'"9999-12-31T23:59:59-23:59"'])
    | strings,
    unknown_field=any_json,
)
_audience_answer = _fields(
    {
        "data": _fields(
            {"attributes": _fields({}, connections=st.lists(_connection, max_size=4).map(_array))},
            unknown_field=any_json,
        )
    }
)
_insight = _fields(
    {
        "attributes": _fields(
            {},
            type=st.sampled_from([b'"dns"', b'"tcp"', b'"tls-cert"']) | strings | any_json,
            failure_type=strings,
            client_service=labels | any_json,
            server_service=labels,
            dns_query=labels,
            domain_name=labels,
            certificate_id=labels,
            failure_magnitude=values,
            failure_rate=values,
            total_requests=values,
            days_until_expiration=values,
            certificate_lifetime_percent=values,
            traffic_volume=_fields({}, bytes_read=values, total_traffic=values) | any_json,
            unknown_field=any_json,
        )
    },
    id=strings,
    type=strings,
)
WELL_SHAPED: dict[str, st.SearchStrategy[bytes]] = {
    "network_health": _rows(_insight),
    "connections": _rows(_connections_row),
    "dns": _rows(_dns_row),
    "cases": _cases_answer,
    "audience": _audience_answer,
}


def bodies(collector: str) -> st.SearchStrategy[bytes]:
    # Mostly well-shaped answers: a body that is wrong from its first byte is rejected at
    # once, while hostile values deep inside a right shape are what reaches rendering.
    well_shaped = WELL_SHAPED[collector]
    return st.one_of(
        well_shaped,
        well_shaped,
        well_shaped,
        st.binary(max_size=4000),
        any_json,
        deep(),
        # A well-shaped answer cut short, or with garbage after it.
        st.tuples(WELL_SHAPED[collector], st.integers(min_value=0, max_value=400)).map(
            lambda pair: pair[0][: pair[1]]
        ),
        st.tuples(WELL_SHAPED[collector], st.binary(min_size=1, max_size=20)).map(
            lambda pair: pair[0] + pair[1]
        ),
    )


# Statuses a hostile answer may come with, and the reason each failed poll must carry. 429
# and 3xx are left out: they are rate limiting and redirects, tested on their own.
REASONS = {200: "decode_error", 201: "decode_error", 400: "http_error", 404: "http_error"}
REASONS |= {500: "server_error", 503: "server_error"}
statuses = st.just(200) | st.sampled_from(sorted(REASONS))
content_types = st.sampled_from(
    ["application/json", "application/vnd.api+json", "text/html", "text/plain; charset=latin-1"]
)


@dataclass(frozen=True)
class Answer:
    """One hostile answer. Shown clipped: Hypothesis would spend minutes printing how a
    megabyte body was built."""

    body: bytes
    status: int
    content_type: str

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:240] + b"..." + self.body[-40:]
        return (
            f"Answer(status={self.status}, content_type={self.content_type!r}, "
            f"{len(self.body)} bytes: {body!r})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


ANSWERS = {
    collector: st.builds(Answer, bodies(collector), statuses, content_types) for collector in JOBS
}

# -- the running stack -----------------------------------------------------------------------


@dataclass
class Stack:
    simulator: Simulator
    scheduler: Scheduler
    web: TestClient[web.Request, web.Application]
    control: aiohttp.ClientSession
    page: dict[SampleKey, float] = field(default_factory=dict)  # the last /metrics read


@pytest.fixture
async def stack(simulator: Simulator, aiohttp_client: Any) -> AsyncIterator[Stack]:
    """Simulator, client, scheduler and /metrics server on 127.0.0.1, every query polled once."""
    async with running_stack(simulator, aiohttp_client) as stack:
        await stack.scheduler.add(*JOBS.values())
        for job in JOBS.values():
            await poll(stack, job)
            assert stack.scheduler.state((job.collector, job.name)).up
        await metrics_page(stack)
        yield stack


@asynccontextmanager
async def running_stack(simulator: Simulator, aiohttp_client: Any) -> AsyncIterator[Stack]:
    """A real client and scheduler polling the simulator, and /metrics served from them; no
    queries yet. Stops the scheduler and closes the client afterwards."""
    redactor = Redactor()
    metrics = SelfMetrics()
    client = DatadogClient(
        simulator.url,
        credentials=credentials(redactor),
        redactor=redactor,
        timeout=10.0,
        max_response_size=MAX_RESPONSE_SIZE,
        on_response=metrics.count_response,
    )
    scheduler = Scheduler(lambda _account: client, redactor, SnapshotStore(), metrics)
    metrics.watch(client.rate_limits.views)
    context = ServerParts(scheduler.store, metrics, scheduler.query_states)
    context.ready.set()
    server = await aiohttp_client(create_app(context))
    try:
        async with aiohttp.ClientSession(base_url=simulator.url) as control:
            yield Stack(simulator, scheduler, server, control)
    finally:
        await scheduler.stop()
        await client.close()


async def poll(stack: Stack, job: QueryJob) -> None:
    """One poll, as the query's loop runs it; it must return, whatever the answer was.

    The deadline leaves no room for retries, so a 5xx fails the poll instead of being
    retried into the next (good) answer.
    """
    await stack.scheduler.poll_once((job.collector, job.name), asyncio.get_running_loop().time())


async def serve_raw(stack: Stack, endpoint: str, answer: Answer) -> None:
    """Arm the simulator's raw fault for the endpoint's next answer, through its control API."""
    fault = {
        "endpoint": endpoint,
        "kind": "raw",
        "count": 1,
        "status": answer.status,
        "content_type": answer.content_type,
        "raw_body": base64.b64encode(answer.body).decode(),
    }
    async with stack.control.post("/_simulator/faults", json=fault) as response:
        assert response.status == 200, await response.text()


async def metrics_page(stack: Stack) -> dict[SampleKey, float]:
    """/metrics over HTTP, checked by promtool and parsed by prometheus_client."""
    response = await stack.web.get("/metrics")
    assert response.status == 200
    text = await response.read()
    promtool_accepts(text)
    stack.page = parse_metrics(text.decode("utf-8"))  # fails on a parse error or duplicate
    return stack.page


def promtool_accepts(text: bytes) -> None:
    """No parse error (exit 1). Lint findings (exit 3) only for names taken from DNS keys.

    A DNS metric key Datadog adds is exported under a name derived from it, which may end in
    ``_total`` or ``_count`` or be camelCase; everything the exporter names itself lints clean.
    """
    proc = subprocess.run(
        [require_tool("promtool"), "check", "metrics"], input=text, capture_output=True
    )
    findings = proc.stderr.decode("utf-8", "replace").strip()
    assert proc.returncode in (0, 3), findings
    if proc.returncode == 3:
        for line in findings.splitlines():
            name = line.split(" ", 1)[0]
            assert name.startswith("datadog_dns_"), line
            assert name not in exported_metric_names(), line


def data_samples(samples: dict[SampleKey, float], job: QueryJob) -> dict[SampleKey, float]:
    """The data series of one query (audience series are labelled by entity)."""
    own = ("entity", "users") if job.collector == "audience" else ("query", job.name)
    return {
        key: value
        for key, value in samples.items()
        if not key[0].startswith("datadog_exporter_") and own in key[1]
    }


def poll_errors(samples: dict[SampleKey, float], job: QueryJob) -> dict[str, float]:
    """The query's failed polls so far, by reason."""
    return {
        dict(labels)["reason"]: value
        for (metric, labels), value in samples.items()
        if metric == "datadog_exporter_poll_errors_total"
        and ("query", job.name) in labels
        and ("collector", job.collector) in labels
    }


async def check_hostile_answer(stack: Stack, job: QueryJob, answer: Answer) -> None:
    """Serve ``answer`` to one poll of ``job``, then a good one; check what a user would see."""
    before = stack.page  # what the last example's good answer left (checked then)
    await serve_raw(stack, job.endpoint, answer)

    await poll(stack, job)  # returning at all is what keeps the query's loop alive
    state = stack.scheduler.state((job.collector, job.name))
    after = await metrics_page(stack)
    counts, earlier = poll_errors(after, job), poll_errors(before, job)
    new_errors = {reason: n - earlier.get(reason, 0) for reason, n in counts.items()}
    new_errors = {reason: n for reason, n in new_errors.items() if n}
    if state.up:
        assert not new_errors and answer.status < 300
    else:
        # The one reason the status implies; never an internal error, never a crash.
        assert new_errors == {REASONS[answer.status]: 1}, (new_errors, state.last_error)
        assert data_samples(after, job) == data_samples(before, job)  # last good data kept
    for other in JOBS.values():  # one bad answer costs at most its own query
        if other is not job:
            assert data_samples(after, other) == data_samples(before, other)

    await poll(stack, job)  # the simulator's own answer again
    assert state.up, state.last_error
    good = await metrics_page(stack)
    assert data_samples(good, job), "the next good answer was not published"
    up = ("datadog_exporter_up", frozenset({("collector", job.collector), ("query", job.name)}))
    assert good[up] == 1


@pytest.mark.parametrize("collector", sorted(JOBS))
@FUZZ
@given(data=st.data())
async def test_any_answer_leaves_the_loop_polling_and_metrics_readable(
    stack: Stack, collector: str, data: st.DataObject
) -> None:
    await check_hostile_answer(stack, JOBS[collector], data.draw(ANSWERS[collector]))


def _nested(depth: int) -> bytes:
    return b'{"k":' * depth + b"1" + b"}" * depth


# Answers that ended a query's loop before decoders turned everything into DecodeError.
LOOP_KILLERS: dict[str, list[Answer]] = {
    "connections": [
        Answer(
            b'{"data":[{"attributes":{"group_bys":' + _nested(5000) + b',"tcp_resets":1}}]}',
            200,
            "application/json",
        ),
        Answer(
            b'{"data":[{"attributes":{"group_bys":{"client_service":["\xff"]},"tcp_resets":1}}]}',
            200,
            "application/json",
        ),
        Answer(
            b'{"data":[{"attributes":{"rtt_micro_seconds":' + b"9" * 400 + b"}}]}",
            200,
            "application/json",
        ),
    ],
    "dns": [Answer(b'{"data":[{"attributes":{},"x":' + _nested(5000) + b"}]}", 200, "text/html")],
    "cases": [Answer(b'{"data":{"attributes":{},"x":' + _nested(5000) + b"}}", 200, "text/plain")],
    "audience": [
        Answer(
            b'{"data":{"attributes":{"connections":[{"id":"a","fields":['
            + _nested(100_000)
            + b"]}]}}}",
            200,
            "application/json",
        )
    ],
}
LOOP_KILLERS["network_health"] = [
    Answer(b'{"data":[' + _nested(5000) + b"]}", 200, "application/json"),
    Answer(b'{"data":[{"attributes":{"client_service":"\xff"}}]}', 200, "application/json"),
]
# An error page nested too deep for the client to describe.
for _answers in LOOP_KILLERS.values():
    _answers.append(Answer(b"[" * 100_000 + b"]" * 100_000, 500, "application/json"))


def test_every_registered_collector_is_fuzzed_over_http() -> None:
    assert set(JOBS) == set(WELL_SHAPED) == set(LOOP_KILLERS) == set(BY_SECTION)


async def test_answers_that_ended_a_loop_leave_the_running_loops_polling(
    simulator: Simulator, aiohttp_client: Any
) -> None:
    """The scheduler's own loops (every second) meet each answer once and poll on."""
    config = parse_config(CONFIG.replace("}\n", ", interval: 1s}\n"))
    jobs = {job.collector: job for job in build_jobs(config)}

    async def published_after(stack: Stack, job: QueryJob, moment: float) -> None:
        state = stack.scheduler.state((job.collector, job.name))
        await eventually(lambda: state.up and (state.last_success or 0) > moment)

    async def run_through(stack: Stack, job: QueryJob, answers: list[Answer]) -> None:
        await published_after(stack, job, 0)
        for answer in answers:
            await serve_raw(stack, job.endpoint, answer)
            await eventually(lambda: job.endpoint not in simulator.active_faults())
            await published_after(stack, job, time.time())

    async with running_stack(simulator, aiohttp_client) as stack:
        await stack.scheduler.start(jobs.values())
        await asyncio.gather(*(run_through(stack, jobs[c], LOOP_KILLERS[c]) for c in jobs))
        page = await metrics_page(stack)
    for job in jobs.values():
        # Each answer failed its own poll, for the reason its status implies (the 5xx may
        # also have been retried into a good answer within the interval).
        errors = poll_errors(page, job)
        assert set(errors) <= {"decode_error", "server_error"}
        assert errors["decode_error"] == len(LOOP_KILLERS[job.collector]) - 1 - (
            job.collector == "connections"
        )
        assert data_samples(page, job)
    # The round-trip time too large for float64 cost only its sample: that poll succeeded.
    invalid = (
        "datadog_exporter_invalid_values_total",
        frozenset({("collector", "connections"), ("query", "pairs")}),
    )
    assert page[invalid] == 1


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {within}s")
