"""What publishes: the store of every query's current snapshot, filing each into the Body.

A poll publishes a :class:`QuerySnapshot` (each of its families compressed once). The store
files each family's chunk under the family's name, in configuration order of the queries,
and swaps in a new :class:`~.body.Body`, the only thing scrapes read (:mod:`.body`).

Publishing costs what the published query costs, not what all queries cost: per family name
the store keeps its chunks in blocks of ``block_queries`` queries and a tree of CRC-32s over
them, so a publish rebuilds one block and one root-to-leaf path of the tree (log2 of the
query count in CRC combines) per family of the query, and never reads another query's bytes.

The compressed form is always kept: gzip scrapes (what Prometheus asks for) copy it as it
is. The text is kept too while all kept text fits in ``plain_text_budget_bytes``: then a
plain scrape (curl, a human) is a copy as well. Beyond the budget only the compressed form
stays, since it is a fraction of the text and the text is what made memory grow with the
series; plain scrapes then inflate those pieces while writing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..exposition import Family, Rendered
from ..gzipjoin import Piece, combine, compress_piece
from .body import EMPTY, Body
from .filing import FamilyGroup, HeaderCache
from .tuning import DEFAULT_TUNING, SnapshotTuning

QueryKey = tuple[str, str]  # (collector, query name)


@dataclass(frozen=True, slots=True)
class QuerySnapshot:
    """One successful poll of one query, rendered and compressed: one piece per family,
    each family name once."""

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
    by_name: dict[str, tuple[Family, list[bytes]]] = {}
    for item in rendered.families:
        # The store keeps one chunk per family name and query; collectors render each name
        # once, and should one render it twice, both parts are kept, in order.
        by_name.setdefault(item.family.name, (item.family, []))[1].append(item.samples)
    texts = tuple(b"".join(parts) for _, parts in by_name.values())
    return QuerySnapshot(
        key=key,
        families=tuple(family for family, _ in by_name.values()),
        pieces=tuple(map(compress_piece, texts)),
        series=rendered.series,
        published_at=published_at,
        texts=texts,
    )


class SnapshotStore:
    """The current snapshot of every query and the Body built from them.

    ``publish`` and ``drop`` change only the published query's chunks and swap in a new
    Body; ``set_order`` (start-up, reload) files every snapshot again. Callers serialize
    them (the scheduler does, off the event loop); scrapes read ``body`` at any time.
    """

    def __init__(
        self,
        order: Iterable[QueryKey] = (),
        tuning: SnapshotTuning = DEFAULT_TUNING,
    ) -> None:
        self.tuning = tuning
        self._snapshots: dict[QueryKey, QuerySnapshot] = {}
        self._kept_text = 0  # bytes of text kept across all snapshots
        self._headers = HeaderCache()
        self._ranks: dict[QueryKey, int] = {}
        self._groups: dict[str, FamilyGroup] = {}
        self._capacity = tuning.block_queries
        self.body = Body(tuning=tuning)
        self.set_order(order)

    def set_order(self, order: Iterable[QueryKey]) -> None:
        """Queries appear on /metrics in configuration order (unknown ones after, in order
        of their first publish)."""
        self._ranks = {}
        for key in order:
            self._ranks.setdefault(key, len(self._ranks))
        for key in self._snapshots:
            self._ranks.setdefault(key, len(self._ranks))
        self._refile()

    def get(self, key: QueryKey) -> QuerySnapshot | None:
        return self._snapshots.get(key)

    def publish(self, snapshot: QuerySnapshot) -> None:
        if len({family.name for family in snapshot.families}) < len(snapshot.families):
            raise ValueError(f"{snapshot.key}: a snapshot names each family once")
        old = self._snapshots.get(snapshot.key)
        if old is not None and old.texts is not None:
            self._kept_text -= old.size
        if snapshot.texts is not None:
            if self._kept_text + snapshot.size > self.tuning.plain_text_budget_bytes:
                # Over the budget: keep this poll compressed only (its text is freed here).
                snapshot = replace(snapshot, texts=None)
            else:
                self._kept_text += snapshot.size
        self._snapshots[snapshot.key] = snapshot
        rank = self._ranks.setdefault(snapshot.key, len(self._ranks))
        if rank >= self._capacity:
            self._refile()  # grows the capacity, files this snapshot with the others
        else:
            self._file(rank, snapshot, old)
            self._swap()

    def drop(self, key: QueryKey) -> bool:
        old = self._snapshots.pop(key, None)
        if old is None:
            return False
        if old.texts is not None:
            self._kept_text -= old.size
        self._unfile(self._ranks[key], old, keep=set())
        self._swap()
        return True

    def _file(self, rank: int, snapshot: QuerySnapshot, old: QuerySnapshot | None) -> None:
        texts = snapshot.texts or (None,) * len(snapshot.pieces)
        names = set()
        for index, (family, piece, text) in enumerate(
            zip(snapshot.families, snapshot.pieces, texts, strict=True)
        ):
            group = self._groups.get(family.name)
            if group is None:
                group = self._groups[family.name] = FamilyGroup(
                    self._capacity, self.tuning.block_queries
                )
            group.put(rank, index, family, piece, text)
            names.add(family.name)
        if old is not None:
            self._unfile(rank, old, keep=names)

    def _unfile(self, rank: int, old: QuerySnapshot, keep: set[str]) -> None:
        """Take a query's chunks out of the families it no longer has."""
        for family in old.families:
            group = self._groups.get(family.name)
            if family.name in keep or group is None or rank not in group.members:
                continue
            group.remove(rank)
            if not group.members:
                del self._groups[family.name]

    def _refile(self) -> None:
        """File every snapshot again from scratch (new order or capacity): O(all chunks)."""
        capacity = self.tuning.block_queries
        while capacity < len(self._ranks) + 1:
            capacity *= 2
        self._capacity = capacity
        self._groups = {}
        ordered = sorted(self._snapshots.values(), key=lambda s: self._ranks[s.key])
        leaves: dict[str, list[tuple[int, int, int]]] = {}
        for snapshot in ordered:
            rank = self._ranks[snapshot.key]
            texts = snapshot.texts or (None,) * len(snapshot.pieces)
            for index, (family, piece, text) in enumerate(
                zip(snapshot.families, snapshot.pieces, texts, strict=True)
            ):
                group = self._groups.get(family.name)
                if group is None:
                    group = self._groups[family.name] = FamilyGroup(
                        capacity, self.tuning.block_queries
                    )
                    group.anchor, group.family = (rank, index), family
                group.members[rank] = (index, family)
                if piece.size:
                    group.slots[rank] = (piece.deflated, text)
                    group.deflated_size += len(piece.deflated)
                    leaves.setdefault(family.name, []).append((rank, piece.crc, piece.size))
        for name, group in self._groups.items():
            group.tree.fill(leaves.get(name, ()))
            for block in range(len(group.blocks)):
                group.refill_block(block)
        self._swap()

    def _swap(self) -> None:
        """Build the Body from the sections (only changed ones are rebuilt) and swap it in."""
        groups = sorted(self._groups.values(), key=lambda group: group.anchor)
        sections = tuple(group.view(self._headers) for group in groups)
        total = EMPTY
        for section in sections:
            total = combine(total, section.total)
        deflated = sum(section.deflated_size for section in sections)
        self.body = Body(sections, total, deflated, self.tuning)
