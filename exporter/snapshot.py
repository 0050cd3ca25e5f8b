"""The rendered data every scrape serves: one immutable snapshot per query, one body for all.

A poll publishes a :class:`QuerySnapshot` (each of its families compressed once); the store
then assembles a :class:`Body` — the families of all queries grouped by name under one
HELP/TYPE header each, as the exposition format requires — and swaps it in. Scrapes only
read the current Body; they never render, compress or lock.

Only the compressed form is kept: it is about a tenth of the text, and the text is what
made memory grow with the series (ten 7,500-row queries: ~184 MB of text, ~16 MB
compressed). gzip scrapes (what Prometheus asks for) copy the pieces as they are; plain
scrapes inflate them piece by piece while writing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .exposition import Family, Rendered
from .gzipjoin import Piece, combine, compress_piece, gzip_member, inflate

QueryKey = tuple[str, str]  # (collector, query name)
_EMPTY = Piece(b"", 0, 0)


@dataclass(frozen=True, slots=True)
class QuerySnapshot:
    """One successful poll of one query, rendered and compressed."""

    key: QueryKey
    families: tuple[Family, ...]
    pieces: tuple[Piece, ...]
    series: int
    published_at: float  # Unix time of the poll

    @property
    def size(self) -> int:
        """Bytes of exposition text."""
        return sum(piece.size for piece in self.pieces)


def prepare_snapshot(key: QueryKey, rendered: Rendered, published_at: float) -> QuerySnapshot:
    """Compress a rendered poll (CPU-bound: call it off the event loop)."""
    return QuerySnapshot(
        key=key,
        families=tuple(item.family for item in rendered.families),
        pieces=tuple(compress_piece(item.samples) for item in rendered.families),
        series=rendered.series,
        published_at=published_at,
    )


@dataclass(frozen=True, slots=True)
class Body:
    """The data part of /metrics: compressed pieces in the order they are served."""

    pieces: tuple[Piece, ...] = ()
    total: Piece = _EMPTY  # CRC-32 and size of the plain text

    def plain_with(self, tail: bytes) -> list[bytes]:
        """The whole text followed by ``tail``, inflated at once (tests, small bodies)."""
        return [*(inflate(piece) for piece in self.pieces), tail]

    def gzip_with(self, tail: bytes) -> list[bytes]:
        """A complete gzip member: these pieces, then ``tail`` (the self-metrics) compressed."""
        piece = compress_piece(tail)
        deflated = [item.deflated for item in self.pieces]
        return gzip_member([*deflated, piece.deflated], combine(self.total, piece))


@dataclass
class _HeaderCache:
    pieces: dict[Family, Piece] = field(default_factory=dict)

    def get(self, family: Family) -> Piece:
        cached = self.pieces.get(family)
        if cached is None:
            cached = self.pieces[family] = compress_piece(family.header())
        return cached


def assemble(snapshots: Iterable[QuerySnapshot], headers: _HeaderCache) -> Body:
    """Group every query's chunks by family name, in order of first appearance."""
    by_name: dict[str, tuple[Family, list[Piece]]] = {}
    for snapshot in snapshots:
        for family, piece in zip(snapshot.families, snapshot.pieces, strict=True):
            entry = by_name.get(family.name)
            if entry is None:
                entry = by_name[family.name] = (family, [])
            entry[1].append(piece)
    pieces: list[Piece] = []
    total = _EMPTY
    for family, chunks in by_name.values():
        for piece in [headers.get(family), *chunks]:
            if piece.size:
                pieces.append(piece)
                total = combine(total, piece)
    return Body(tuple(pieces), total)


class SnapshotStore:
    """The current snapshot of every query and the Body built from them.

    ``publish`` and ``drop`` rebuild the Body from all snapshots; callers serialize them
    (the scheduler does, off the event loop).
    """

    def __init__(self, order: Iterable[QueryKey] = ()) -> None:
        self._snapshots: dict[QueryKey, QuerySnapshot] = {}
        self._order: list[QueryKey] = list(order)
        self._headers = _HeaderCache()
        self.body = Body()

    def set_order(self, order: Iterable[QueryKey]) -> None:
        """Queries appear on /metrics in configuration order."""
        self._order = list(order)

    def get(self, key: QueryKey) -> QuerySnapshot | None:
        return self._snapshots.get(key)

    def publish(self, snapshot: QuerySnapshot) -> None:
        self._snapshots[snapshot.key] = snapshot
        self._rebuild()

    def drop(self, key: QueryKey) -> bool:
        if self._snapshots.pop(key, None) is None:
            return False
        self._rebuild()
        return True

    def _rebuild(self) -> None:
        rank = {key: index for index, key in enumerate(self._order)}
        ordered = sorted(self._snapshots.values(), key=lambda s: rank.get(s.key, len(rank)))
        self.body = assemble(ordered, self._headers)
