"""/metrics serves the per-query self-metrics as they were rendered when each query changed:
a transition the clock alone decides shows without a poll, a removed query vanishes, and a
scrape reads no query's state, so it costs no more with 2,000 queries than with 10."""

from __future__ import annotations

import gzip
from typing import Any, ClassVar

from aiohttp.test_utils import TestClient, TestServer

from exporter.scheduler import PollPolicy, QueryState, Scheduler
from exporter.selfmetrics import SelfMetrics
from exporter.server import ServerParts, create_app
from exporter.snapshot import SnapshotStore
from simulator import Fault, Simulator
from tests.clocks import SteppedClock, run_stepped
from tests.helpers import Samples, parse_metrics

from .conftest import deadline, scheduler_against
from .test_scheduler import job, query_series

AT_ONCE = PollPolicy(startup_spread=0.0, sweep_interval=1.0)


async def scrape(store: SnapshotStore, metrics: SelfMetrics, *, zipped: bool = False) -> bytes:
    """GET /metrics from the real handler, plain or gzip; the text either way."""
    context = ServerParts(store, metrics, list)
    context.ready.set()
    server = TestServer(create_app(context), host="127.0.0.1")
    async with TestClient(server, auto_decompress=False) as client:
        coding = "gzip" if zipped else "identity"
        response = await client.get("/metrics", headers={"Accept-Encoding": coding})
        assert response.status == 200
        assert response.headers.get("Content-Encoding") == ("gzip" if zipped else None)
        body = await response.read()
        return gzip.decompress(body) if zipped else body


async def samples_of(scheduler: Scheduler) -> Samples:
    return parse_metrics((await scrape(scheduler.store, scheduler.metrics)).decode())


def labels(query: str) -> frozenset[tuple[str, str]]:
    return frozenset({("collector", "connections"), ("query", query)})


async def test_a_stale_transition_shows_on_metrics_without_a_poll(simulator: Simulator) -> None:
    """A query polled hourly fails: it serves its last good series, marked stale, and when
    they pass stale_after (5 min) the sweeper drops them; /metrics shows each step at once,
    with no poll in between."""
    clock = SteppedClock()
    async with scheduler_against(simulator.url, clock=clock, policy=AT_ONCE) as scheduler:
        await scheduler.start([job("a", interval="1h", stale_after="5m")])
        await run_stepped(clock, 0, sleepers=2)  # the first poll, at once; both wait again
        samples = await samples_of(scheduler)
        assert samples[("datadog_exporter_up", labels("a"))] == 1
        assert samples[("datadog_exporter_serving_stale", labels("a"))] == 0
        good = query_series(samples, "a")
        assert good

        simulator.set_fault("connections", Fault(kind="status", status=400))
        await run_stepped(clock, 60, sleepers=2, step=5)
        await scheduler.poll_once(("connections", "a"), deadline(5))  # outside the schedule
        polled = len(simulator.requests_to("connections"))
        samples = await samples_of(scheduler)
        assert samples[("datadog_exporter_up", labels("a"))] == 0
        assert samples[("datadog_exporter_serving_stale", labels("a"))] == 1
        assert query_series(samples, "a") == good

        await run_stepped(clock, 235, sleepers=2, step=5)  # the good poll is 295 s old
        assert (await samples_of(scheduler))[("datadog_exporter_serving_stale", labels("a"))] == 1
        await run_stepped(clock, 10, sleepers=2, step=1)  # 305 s: the sweeper drops them
        samples = await samples_of(scheduler)
        assert samples[("datadog_exporter_serving_stale", labels("a"))] == 0
        assert samples[("datadog_exporter_series", labels("a"))] == 0
        assert samples[("datadog_exporter_up", labels("a"))] == 0
        assert not query_series(samples, "a")
        assert len(simulator.requests_to("connections")) == polled  # no poll did it


async def test_a_removed_query_vanishes_from_metrics_and_a_changed_one_starts_at_zero(
    simulator: Simulator,
) -> None:
    """A reload that removes a query takes all its samples off /metrics; one whose settings
    changed comes back with its counters at 0."""
    async with scheduler_against(simulator.url) as scheduler:
        await scheduler.apply([job("gone"), job("changed"), job("kept")])
        for name in ("gone", "changed", "kept"):
            await scheduler.poll_once(("connections", name), deadline(5))
        simulator.set_fault("connections", Fault(kind="status", status=400))
        for name in ("gone", "changed", "kept"):
            await scheduler.poll_once(("connections", name), deadline(5))
        text = (await scrape(scheduler.store, scheduler.metrics)).decode()
        assert 'query="gone"' in text
        errors = (
            "datadog_exporter_poll_errors_total",
            labels("changed") | {("reason", "http_error")},
        )
        assert parse_metrics(text)[errors] == 1

        await scheduler.apply([job("changed", interval="2m"), job("kept")])
        for zipped in (False, True):
            text = (await scrape(scheduler.store, scheduler.metrics, zipped=zipped)).decode()
            assert 'query="gone"' not in text
            samples = parse_metrics(text)
            assert errors not in samples
            assert samples[("datadog_exporter_dropped_rows_total", labels("changed"))] == 0
            assert samples[("datadog_exporter_interval_seconds", labels("changed"))] == 120
            kept = (
                "datadog_exporter_poll_errors_total",
                labels("kept") | {("reason", "http_error")},
            )
            assert samples[kept] == 1


class CountedState(QueryState):
    """A query's state that counts every read of what /metrics shows of it."""

    reads: ClassVar[list[int]] = [0]
    SHOWN: ClassVar[frozenset[str]] = frozenset(
        {
            "up",
            "last_success",
            "last_duration",
            "series",
            "window",
            "interval",
            "serving_stale",
            "rows",
            "group_by_unresolved",
        }
    )

    def __getattribute__(self, name: str) -> Any:
        if name in CountedState.SHOWN:
            CountedState.reads[0] += 1
        return super().__getattribute__(name)


async def scrape_work(queries: int) -> tuple[int, int, int]:
    """(state reads during 3 plain and 3 gzip scrapes, bytes of the self-metrics rendered for
    a scrape, up samples served) with ``queries`` queries, each changed once before."""
    metrics = SelfMetrics()
    for index in range(queries):
        state = CountedState("connections", f"q{index:04d}", "connections", 60.0, 300.0)
        metrics.show_query(state)
        state.up, state.series, state.last_success = True, 10, 1_700_000_000.0 + index
        metrics.query_changed(("connections", f"q{index:04d}"))
    store = SnapshotStore()
    CountedState.reads[0] = 0
    texts = [await scrape(store, metrics, zipped=zipped) for zipped in (False, True) * 3]
    reads = CountedState.reads[0]
    kept = b"".join(metrics.for_scrape().per_query.texts)
    assert all(text.startswith(kept) for text in texts)  # served as kept, plain and gzip
    up = sum(1 for line in texts[0].splitlines() if line.startswith(b"datadog_exporter_up{"))
    return reads, len(metrics.for_scrape().process), up


async def test_scrape_work_does_not_grow_with_the_query_count() -> None:
    """With 10 or 2,000 queries a scrape reads no query's state and renders the same few
    process-wide bytes; the per-query samples are served all the same, from what their
    last change rendered."""
    few_reads, few_rendered, few_up = await scrape_work(10)
    many_reads, many_rendered, many_up = await scrape_work(2000)
    assert (few_up, many_up) == (10, 2000)
    assert few_reads == many_reads == 0
    # The process-wide part is the same families and series either way; only digits of
    # values (memory, CPU seconds, open files) may differ.
    assert abs(many_rendered - few_rendered) < 64, (few_rendered, many_rendered)
