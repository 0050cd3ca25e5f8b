"""CPU a scrape spends on the self-metrics, and a poll on keeping them, at N queries.

    python -m benchmarks.selfmetrics_scrape [--queries 2000]
    PYTHONPATH=/path/to/other/checkout python benchmarks/selfmetrics_scrape.py

The second form measures another checkout's ``exporter`` (one from before the per-query
self-metrics were kept rendered renders them at each scrape, so only its scrape is timed).
Times are thread CPU, the best of several tries: the machine's other work adds wall time,
not CPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from exporter.gzipjoin import compress_piece
from exporter.scheduler import QueryState
from exporter.selfmetrics import SelfMetrics


def best_ms(work: Callable[[], object], tries: int) -> float:
    best = float("inf")
    for _ in range(tries):
        started = time.thread_time()
        work()
        best = min(best, time.thread_time() - started)
    return best * 1e3


def states(queries: int) -> list[QueryState]:
    """Queries as after a good poll: up, 20 rows, two group_by fields resolved."""
    return [
        QueryState(
            "connections",
            f"q{index:04d}",
            "connections",
            60.0,
            300.0,
            up=True,
            series=280,
            last_success=1.7e9 + index,
            last_duration=0.01,
            rows=20,
            group_by_unresolved=(("client_service", False), ("server_service", False)),
        )
        for index in range(queries)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=2000, help="queries shown")
    args = parser.parse_args()
    shown = states(args.queries)
    metrics: Any = SelfMetrics()
    if not hasattr(metrics, "for_scrape"):  # before: states read, and rendered, per scrape
        metrics.watch(lambda: shown, list)
        for state in shown:
            metrics.show_query(state.collector, state.name)
        tail = metrics.render()
        ms = best_ms(lambda: compress_piece(metrics.render()), 20)
        print(
            f"{args.queries} queries, rendered per scrape: {ms:.2f} ms CPU per scrape "
            f"(render and compress the self-metrics, {len(tail) / 1e6:.2f} MB of text)"
        )
        return
    metrics.watch(list)
    for state in shown:
        metrics.show_query(state)
    changed = shown[7]
    key = (changed.collector, changed.name)

    def scrape() -> None:
        compress_piece(metrics.for_scrape().process)

    def poll_ended() -> None:  # what a good poll changes: last success, duration
        changed.last_success = (changed.last_success or 0.0) + 60
        changed.last_duration = (changed.last_duration or 0.0) + 0.001
        metrics.query_changed(key)

    def poll_then_scrape() -> None:
        poll_ended()
        scrape()

    kept = metrics.for_scrape().per_query
    print(
        f"{args.queries} queries, kept rendered ({sum(map(len, kept.texts)) / 1e6:.2f} MB of "
        f"text, {kept.deflated_size / 1e3:.0f} kB compressed): scrape {best_ms(scrape, 20):.2f} "
        f"ms CPU when no query changed since the last one, "
        f"{best_ms(poll_then_scrape, 20):.2f} ms after one did; "
        f"a poll's change {best_ms(poll_ended, 200) * 1e3:.0f} µs"
    )


if __name__ == "__main__":
    main()
