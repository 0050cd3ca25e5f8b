"""/metrics serves the same text plain and gzip, from a body kept only compressed."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from pytest_aiohttp import AiohttpClient

from exporter.collectors.connections import ConnectionsJob
from exporter.config.schema import ConnectionsQuery
from exporter.selfmetrics import SelfMetrics
from exporter.server import ServerParts, create_app
from exporter.snapshot import SnapshotStore, SnapshotTuning, prepare_snapshot
from tests.helpers import Samples, parse_metrics, render_body


def answer(rows: int) -> bytes:
    data = [
        {
            "attributes": {
                "group_bys": {"client_service": [f"svc-{i}"], "server_service": ['db "main"']},
                "tcp_resets": i,
                "tcp_retransmits": i * 2,
                "rtt_micro_seconds": 1500 + i,
            }
        }
        for i in range(rows)
    ]
    return json.dumps({"data": data}).encode()


@pytest.mark.parametrize("plain_budget", [0, 100_000, 10**9], ids=["none", "one", "all"])
async def test_plain_and_gzip_scrapes_carry_identical_series(
    aiohttp_client: AiohttpClient, plain_budget: int
) -> None:
    """Whether a query's text is kept (within the budget) or inflated per scrape."""
    # Small inflate batches, so a plain scrape crosses many batch boundaries.
    store = SnapshotStore(
        tuning=SnapshotTuning(plain_text_budget_bytes=plain_budget, inflate_batch_bytes=2000)
    )
    for name in ("a", "b"):
        job = ConnectionsJob(
            ConnectionsQuery(name=name, group_by=["client_service", "server_service"])
        )
        store.publish(prepare_snapshot(("connections", name), render_body(job, answer(300)), 0.0))
    snapshots = [store.get(("connections", name)) for name in ("a", "b")]
    kept = [snapshot is not None and snapshot.texts is not None for snapshot in snapshots]
    assert kept == {0: [False, False], 100_000: [True, False], 10**9: [True, True]}[plain_budget]
    context = ServerParts(store, SelfMetrics(), lambda: [])
    context.ready.set()
    client = await aiohttp_client(create_app(context))

    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    plain_text = await plain.read()
    assert plain.headers["Content-Length"] == str(len(plain_text))
    packed = await client.get(
        "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert packed.headers["Content-Encoding"] == "gzip"
    gzip_text = gzip.decompress(await packed.read())

    def data_series(text: bytes) -> Samples:
        samples = parse_metrics(text.decode())
        return {key: value for key, value in samples.items() if key[0].startswith("datadog_cnm_")}

    assert data_series(plain_text) == data_series(gzip_text)
    assert len(data_series(plain_text)) == 2 * 300 * 3
    assert plain_text.count(b"# TYPE datadog_cnm_tcp_resets gauge") == 1


async def test_two_thousand_small_queries_all_appear_on_metrics_with_bounded_publish_work(
    aiohttp_client: AiohttpClient,
) -> None:
    """Start-up with many queries: each publish costs its own query's work, so 2,000 of them
    take a bounded total, not the square of the query count."""
    names = [f"q{index:04d}" for index in range(2000)]
    store = SnapshotStore([("connections", name) for name in names])
    body = answer(2)
    spent = 0.0
    for name in names:
        job = ConnectionsJob(
            ConnectionsQuery(name=name, group_by=["client_service", "server_service"])
        )
        snapshot = prepare_snapshot(("connections", name), render_body(job, body), 0.0)
        started = time.thread_time()
        store.publish(snapshot)
        spent += time.thread_time() - started
        # 1 ms per publish on average; rebuilding the body each time needs several seconds.
        assert spent < 2.0, f"{spent:.1f} s of CPU after publishing {name}"
    context = ServerParts(store, SelfMetrics(), lambda: [])
    context.ready.set()
    client = await aiohttp_client(create_app(context))
    packed = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    for response in (packed, plain):
        samples = parse_metrics(await response.text())
        queries = {
            dict(labels).get("query") for name, labels in samples if name.startswith("datadog_cnm_")
        }
        assert queries == set(names)
        assert len([key for key in samples if key[0].startswith("datadog_cnm_")]) == 2000 * 2 * 3
