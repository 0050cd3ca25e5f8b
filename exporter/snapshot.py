"""The rendered data every scrape serves: one immutable snapshot per query, one body for all.

A poll publishes a :class:`QuerySnapshot` (each of its families compressed once); the store
then assembles a :class:`Body` — the families of all queries grouped by name under one
HELP/TYPE header each, as the exposition format requires — and swaps it in. Scrapes only
read the current Body; they never render, compress or lock.

The compressed form is always kept: gzip scrapes (what Prometheus asks for) copy it as it
is. The text is kept too while all kept text fits in PLAIN_TEXT_BUDGET_BYTES: then a plain
scrape (curl, a human) is a copy as well. Beyond the budget only the compressed form stays,
since it is about a tenth of the text and the text is what made memory grow with the series
(ten 7,500-row queries: ~184 MB of text, ~16 MB compressed); plain scrapes then inflate those
pieces while writing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .exposition import Family, Rendered
from .gzipjoin import Piece, combine, compress_piece, compress_pieces, gzip_member, inflate

QueryKey = tuple[str, str]  # (collector, query name)
_EMPTY = Piece(b"", 0, 0)
# Plain text kept beside the compressed pieces, across all queries. One 7,500-row connections
# query (~18 MB of text) fits, so plain scrapes of a typical deployment are a copy; at a
# million samples and more the compressed form alone keeps memory near 170 bytes a sample.
PLAIN_TEXT_BUDGET_BYTES = 24 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class QuerySnapshot:
    """One successful poll of one query, rendered and compressed."""

    key: QueryKey
    families: tuple[Family, ...]
    pieces: tuple[Piece, ...]
    series: int
    published_at: float  # Unix time of the poll
    texts: tuple[bytes, ...] | None = None  # the pieces' text, while the budget allows

    @property
    def size(self) -> int:
        """Bytes of exposition text."""
        return sum(piece.size for piece in self.pieces)


def prepare_snapshot(key: QueryKey, rendered: Rendered, published_at: float) -> QuerySnapshot:
    """Compress a rendered poll (CPU-bound: call it off the event loop)."""
    texts = tuple(item.samples for item in rendered.families)
    return QuerySnapshot(
        key=key,
        families=tuple(item.family for item in rendered.families),
        pieces=compress_pieces(texts),
        series=rendered.series,
        published_at=published_at,
        texts=texts,
    )


@dataclass(frozen=True, slots=True)
class Body:
    """The data part of /metrics: compressed pieces in the order they are served, and the
    text of each where it is kept (``None`` where a plain scrape must inflate the piece)."""

    pieces: tuple[Piece, ...] = ()
    total: Piece = _EMPTY  # CRC-32 and size of the plain text
    texts: tuple[bytes | None, ...] = ()

    def plain_with(self, tail: bytes) -> list[bytes]:
        """The whole text followed by ``tail``, inflated at once where needed (tests)."""
        texts = self.texts or (None,) * len(self.pieces)
        return [
            *(
                inflate(piece) if text is None else text
                for piece, text in zip(self.pieces, texts, strict=True)
            ),
            tail,
        ]

    def gzip_with(self, tail: bytes) -> list[bytes]:
        """A complete gzip member: these pieces, then ``tail`` (the self-metrics) compressed."""
        piece = compress_piece(tail)
        deflated = [item.deflated for item in self.pieces]
        return gzip_member([*deflated, piece.deflated], combine(self.total, piece))


@dataclass
class _HeaderCache:
    pieces: dict[Family, tuple[Piece, bytes]] = field(default_factory=dict)

    def get(self, family: Family) -> tuple[Piece, bytes]:
        cached = self.pieces.get(family)
        if cached is None:
            header = family.header()
            cached = self.pieces[family] = (compress_piece(header), header)
        return cached


def assemble(snapshots: Iterable[QuerySnapshot], headers: _HeaderCache) -> Body:
    """Group every query's chunks by family name, in order of first appearance."""
    by_name: dict[str, tuple[Family, list[tuple[Piece, bytes | None]]]] = {}
    for snapshot in snapshots:
        texts = snapshot.texts or (None,) * len(snapshot.pieces)
        for family, piece, text in zip(snapshot.families, snapshot.pieces, texts, strict=True):
            entry = by_name.get(family.name)
            if entry is None:
                entry = by_name[family.name] = (family, [])
            entry[1].append((piece, text))
    pieces: list[Piece] = []
    kept: list[bytes | None] = []
    total = _EMPTY
    for family, chunks in by_name.values():
        for piece, text in [headers.get(family), *chunks]:
            if piece.size:
                pieces.append(piece)
                kept.append(text)
                total = combine(total, piece)
    return Body(tuple(pieces), total, tuple(kept))


class SnapshotStore:
    """The current snapshot of every query and the Body built from them.

    ``publish`` and ``drop`` rebuild the Body from all snapshots; callers serialize them
    (the scheduler does, off the event loop).
    """

    def __init__(
        self, order: Iterable[QueryKey] = (), plain_budget: int = PLAIN_TEXT_BUDGET_BYTES
    ) -> None:
        self.plain_budget = plain_budget
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
        if snapshot.texts is not None:
            others = sum(
                s.size
                for key, s in self._snapshots.items()
                if s.texts is not None and key != snapshot.key
            )
            if others + snapshot.size > self.plain_budget:
                # Over the budget: keep this poll compressed only (its text is freed here).
                snapshot = replace(snapshot, texts=None)
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
