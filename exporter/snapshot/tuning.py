"""The snapshot store's tunables, in one value: what each trades, and why its default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SnapshotTuning:
    """How much text the store keeps, how scrapes batch their writes, how publishes file.

    The defaults are what the benchmark (``python -m benchmarks``) was measured with; tests
    shrink them to reach every path with little data.
    """

    # Plain text kept beside the compressed pieces, across all queries. One 7,500-row
    # connections query (~18 MB of text) fits, so plain scrapes of a typical deployment are a
    # copy; at a million samples and more the compressed form alone keeps memory small.
    plain_text_budget_bytes: int = 24 * 1024 * 1024
    # Plain scrapes inflate (and join) about this much text per step, on the event loop
    # between socket writes: small enough not to stall other requests, and a worker thread
    # would make the loop wait for the GIL at every hand-over.
    inflate_batch_bytes: int = 1 << 20
    # Scrapes join small chunks into writes of about this size: one write per chunk would
    # cost more than the copy at thousands of queries, and each write is a wait for the event
    # loop. Chunks of at least direct_write_bytes (on average over a block) are written as
    # they are.
    write_batch_bytes: int = 1 << 20
    direct_write_bytes: int = 1 << 16
    # Queries per block of a family's chunk list: a publish rebuilds one block of this many
    # slots and the list of blocks (queries / block_queries entries), both reference copies.
    # A power of two: the store's capacity doubles from it.
    block_queries: int = 64

    def __post_init__(self) -> None:
        if self.block_queries < 1 or self.block_queries & (self.block_queries - 1):
            raise ValueError(f"block_queries must be a power of two, not {self.block_queries}")
        for name in ("inflate_batch_bytes", "write_batch_bytes", "direct_write_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.plain_text_budget_bytes < 0:
            raise ValueError("plain_text_budget_bytes must not be negative")


DEFAULT_TUNING = SnapshotTuning()
