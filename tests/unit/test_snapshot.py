"""The snapshot store serves every query's families grouped by name, and publishing one query
costs that query's work only: it reads none of the other queries' pieces, and its CPU time
does not grow with the number of queries."""

from __future__ import annotations

import gzip
import random
import time
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.exposition import Family, Rendered, RenderedFamily
from exporter.gzipjoin import Piece, compress_piece
from exporter.snapshot import (
    DEFAULT_TUNING,
    QueryKey,
    QuerySnapshot,
    SnapshotStore,
    SnapshotTuning,
    prepare_snapshot,
)

NAMES = ("alpha", "beta", "gamma", "delta")


def snapshot(
    key: QueryKey, families: list[tuple[str, bytes]], keep_text: bool = True
) -> QuerySnapshot:
    texts = tuple(text for _, text in families)
    return QuerySnapshot(
        key=key,
        families=tuple(Family(name, f"help of {name}") for name, _ in families),
        pieces=tuple(map(compress_piece, texts)),
        series=len(families),
        published_at=0.0,
        texts=texts if keep_text else None,
    )


def reference_text(order: list[QueryKey], current: dict[QueryKey, QuerySnapshot]) -> bytes:
    """What /metrics must carry, built sample line by sample line: queries in configuration
    order (unknown ones after, in first-publish order); each family name once, where it first
    appears, with the HELP/TYPE of its first query and then every query's lines of it."""
    ranked = sorted(current.values(), key=lambda s: order.index(s.key))
    grouped: dict[str, tuple[Family, list[bytes]]] = {}
    for item in ranked:
        assert item.texts is not None
        for family, text in zip(item.families, item.texts, strict=True):
            grouped.setdefault(family.name, (family, []))[1].append(text)
    return b"".join(family.header() + b"".join(texts) for family, texts in grouped.values())


def served(store: SnapshotStore, tail: bytes = b"# tail\n") -> bytes:
    """The plain and gzip bodies, checked to carry the same text in one gzip member."""
    plain = store.body.plain(tail)
    text = b"".join(plain.parts)
    assert len(text) == plain.size
    packed = store.body.gzip(tail)
    compressed = b"".join(packed.parts)
    assert len(compressed) == packed.size
    decoder = zlib.decompressobj(wbits=31)  # stops after one member, as some clients do
    assert decoder.decompress(compressed) == text
    assert decoder.eof and decoder.unused_data == b""
    assert gzip.decompress(compressed) == text
    assert text.endswith(tail)
    return text[: -len(tail)]


lines = st.lists(st.sampled_from([b"a 1\n", b'b{x="y"} 2\n', b"c 3.5\n"]), max_size=4).map(b"".join)
query_families = st.lists(
    st.tuples(st.sampled_from(NAMES), lines), max_size=4, unique_by=lambda f: f[0]
)
steps = st.lists(
    st.tuples(st.integers(0, 5), st.booleans(), query_families, st.booleans()), max_size=25
)


tunings = st.builds(
    SnapshotTuning,
    plain_text_budget_bytes=st.integers(0, 300),
    inflate_batch_bytes=st.integers(1, 40),
    write_batch_bytes=st.integers(1, 40),
    direct_write_bytes=st.integers(1, 40),
    block_queries=st.sampled_from([1, 2, 4, 64]),  # small blocks: many blocks, regrowth
)


@settings(max_examples=150, deadline=None)
@given(steps, st.integers(0, 6), tunings)
def test_body_matches_a_line_by_line_reference_through_publishes_and_drops(
    changes: list[tuple[int, bool, list[tuple[str, bytes]], bool]],
    configured: int,
    tuning: SnapshotTuning,
) -> None:
    """Queries 0..configured-1 are in the configured order; the others are not."""
    order = [("c", f"q{index}") for index in range(configured)]
    store = SnapshotStore(order, tuning)
    current: dict[QueryKey, QuerySnapshot] = {}
    for index, drop, families, keep_text in changes:
        key = ("c", f"q{index}")
        if drop:
            assert store.drop(key) == (key in current)
            current.pop(key, None)
        else:
            store.publish(snapshot(key, families, keep_text))
            current[key] = snapshot(key, families)
        if key not in order and key in current:
            order.append(key)
        assert served(store) == reference_text(order, current)


def test_thousands_of_queries_in_many_blocks_match_the_reference_after_reordering() -> None:
    rng = random.Random(7)
    keys = [("c", f"q{index}") for index in range(5 * DEFAULT_TUNING.block_queries + 3)]
    order = keys[:]
    rng.shuffle(order)
    store = SnapshotStore(order[: len(order) // 2])  # the rest are unknown at first
    current: dict[QueryKey, QuerySnapshot] = {}
    for key in keys:
        families = [(name, f'{name}{{q="{key[1]}"}} 1\n'.encode()) for name in NAMES]
        families = rng.sample(families, rng.randint(1, len(NAMES)))
        store.publish(snapshot(key, families))
        current[key] = snapshot(key, families)
    for key in rng.sample(keys, 40):
        assert store.drop(key)
        del current[key]
    store.set_order(order)
    assert served(store) == reference_text(order, current)


class WatchedPiece(Piece):
    """A piece that notes every read of its fields."""

    __slots__ = ()
    reads: list[Piece] = []  # noqa: RUF012 (shared on purpose: one log for all pieces)

    def __getattribute__(self, name: str) -> Any:
        if name in ("deflated", "crc", "size"):
            WatchedPiece.reads.append(self)
        return super().__getattribute__(name)


def watched(key: QueryKey, version: int) -> QuerySnapshot:
    texts = tuple(f'{name}{{q="{key[1]}",v="{version}"}} 1\n'.encode() for name in NAMES)
    pieces = []
    for text in texts:
        piece = compress_piece(text)
        pieces.append(WatchedPiece(piece.deflated, piece.crc, piece.size))
    return QuerySnapshot(
        key, tuple(Family(name, "help") for name in NAMES), tuple(pieces), len(texts), 0.0, texts
    )


def test_publishing_one_query_reads_none_of_the_other_queries_pieces() -> None:
    """No CRC, size or bytes of another query is read (rebuilding the body would read them
    all); what a publish copies of its neighbours are references, a block's worth at most."""
    keys = [("c", f"q{index}") for index in range(300)]
    store = SnapshotStore(keys)
    for key in keys:
        store.publish(watched(key, 1))
    before = store.body
    previous = store.get(keys[150])
    assert previous is not None
    new = watched(keys[150], 2)
    own = {id(piece) for piece in (*new.pieces, *previous.pieces)}
    WatchedPiece.reads.clear()
    store.publish(new)
    assert WatchedPiece.reads, "the published query's own pieces are read"
    assert [piece for piece in WatchedPiece.reads if id(piece) not in own] == []
    # ...and the new body serves it, while a scrape still on the old body sees the old one.
    assert b'q="q150",v="2"' in served(store)
    assert b'q="q150",v="1"' in b"".join(before.plain(b"").parts)


def republish_cpu_seconds(queries: int, rounds: int = 30) -> float:
    """The least thread CPU time of publishing one query again among ``queries`` queries
    of 17 families each (the shape of a connections query)."""
    keys = [("c", f"q{index}") for index in range(queries)]
    store = SnapshotStore(keys)
    pieces = tuple(compress_piece(f"m{index} 1\n".encode()) for index in range(17))
    families = tuple(Family(f"m{index}", "help") for index in range(17))
    for key in keys:
        store.publish(QuerySnapshot(key, families, pieces, 17, 0.0))
    middle = QuerySnapshot(keys[queries // 2], families, pieces, 17, 0.0)
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        store.publish(middle)
        best = min(best, time.thread_time() - started)
    return best


def test_publish_cpu_does_not_grow_with_the_number_of_queries() -> None:
    few, many = republish_cpu_seconds(100), republish_cpu_seconds(1500)
    # Rebuilding the body over every query would make the second 15x the first.
    assert many < 3 * few, (few, many)
    assert many < 0.002, many  # the bound for one publish, here for 17 families


def test_a_family_rendered_twice_by_one_query_is_served_once_with_both_parts() -> None:
    family = Family("alpha", "help")
    rendered = Rendered(
        (RenderedFamily(family, b"alpha 1\n"), RenderedFamily(family, b'alpha{x="2"} 2\n')), 2
    )
    store = SnapshotStore()
    store.publish(prepare_snapshot(("c", "q"), rendered, 0.0))
    assert served(store) == family.header() + b'alpha 1\nalpha{x="2"} 2\n'


@pytest.mark.parametrize(
    "change",
    [
        {"block_queries": 3},
        {"block_queries": 0},
        {"inflate_batch_bytes": 0},
        {"write_batch_bytes": 0},
        {"direct_write_bytes": 0},
        {"plain_text_budget_bytes": -1},
    ],
)
def test_a_tuning_the_store_cannot_work_with_is_refused(change: dict[str, int]) -> None:
    """Blocks tile a power-of-two capacity (the CRC tree's order depends on it); batches of
    nothing would write nothing."""
    with pytest.raises(ValueError, match=next(iter(change))):
        SnapshotTuning(**change)
