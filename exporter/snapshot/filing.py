"""How the store files one family name's chunks: what a publish changes in place.

A :class:`FamilyGroup` holds every query's chunk of one family name in slots by query rank,
grouped in blocks of ``block_queries``, with a :class:`CrcTree` over the slots so the
section's CRC-32 and size follow a change in O(log n) combines. Only :mod:`.store` uses
these, one change at a time; what they hand out (:class:`~.body.Section`) is immutable.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..exposition import Family
from ..gzipjoin import Piece, combine, compress_piece, crc32_combine
from .body import NO_CHUNKS, Block, Chunk, Section


class CrcTree:
    """CRC-32 and length of the concatenation of a sequence of slots, kept up to date in
    O(log n) combines per changed slot (a segment tree over a power-of-two capacity)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._crcs = [0] * (2 * capacity)
        self._sizes = [0] * (2 * capacity)

    def set(self, slot: int, crc: int, size: int) -> None:
        node = self.capacity + slot
        crcs, sizes = self._crcs, self._sizes
        crcs[node], sizes[node] = crc, size
        node //= 2
        while node:
            self._join(node, crcs, sizes)
            node //= 2

    def fill(self, leaves: Iterable[tuple[int, int, int]]) -> None:
        """Set many slots (slot, crc, size) at once, then every inner node once."""
        crcs, sizes = self._crcs, self._sizes
        for slot, crc, size in leaves:
            crcs[self.capacity + slot], sizes[self.capacity + slot] = crc, size
        for node in range(self.capacity - 1, 0, -1):
            self._join(node, crcs, sizes)

    @staticmethod
    def _join(node: int, crcs: list[int], sizes: list[int]) -> None:
        left, right = 2 * node, 2 * node + 1
        if not sizes[right]:
            crcs[node], sizes[node] = crcs[left], sizes[left]
        elif not sizes[left]:
            crcs[node], sizes[node] = crcs[right], sizes[right]
        else:
            crcs[node] = crc32_combine(crcs[left], crcs[right], sizes[right])
            sizes[node] = sizes[left] + sizes[right]

    @property
    def total(self) -> Piece:
        return Piece(b"", self._crcs[1], self._sizes[1])


class FamilyGroup:
    """Everything the store keeps for one family name, changed in place by publishes."""

    def __init__(self, capacity: int, block_queries: int) -> None:
        self.block_queries = block_queries
        # Query rank -> (index of the family in that query, the query's Family): the member
        # with the smallest (rank, index) places the family in the body and gives its header.
        self.members: dict[int, tuple[int, Family]] = {}
        self.anchor: tuple[int, int] = (1 << 62, 0)
        self.family: Family | None = None
        self.slots: list[Chunk | None] = [None] * capacity  # by rank; None: nothing to serve
        self.blocks: list[Block] = [NO_CHUNKS] * (capacity // block_queries)
        self.tree = CrcTree(capacity)
        self.deflated_size = 0
        self.section: Section | None = None  # the published view; None when it changed

    def put(self, rank: int, index: int, family: Family, piece: Piece, text: bytes | None) -> None:
        self.members[rank] = (index, family)
        if rank == self.anchor[0] or (rank, index) < self.anchor:
            # Every other member has a larger rank, so this one is (or stays) the first.
            self.anchor, self.family = (rank, index), family
        self._set_slot(rank, (piece.deflated, text) if piece.size else None)
        self.tree.set(rank, piece.crc, piece.size)

    def remove(self, rank: int) -> None:
        del self.members[rank]
        if rank == self.anchor[0] and self.members:
            first = min(self.members)
            self.anchor, self.family = (first, self.members[first][0]), self.members[first][1]
        self._set_slot(rank, None)
        self.tree.set(rank, 0, 0)

    def _set_slot(self, rank: int, chunk: Chunk | None) -> None:
        old = self.slots[rank]
        if old is not None:
            self.deflated_size -= len(old[0])
        if chunk is not None:
            self.deflated_size += len(chunk[0])
        self.slots[rank] = chunk
        self.refill_block(rank // self.block_queries)

    def refill_block(self, block: int) -> None:
        start = block * self.block_queries
        self.blocks[block] = Block.of(
            tuple(filter(None, self.slots[start : start + self.block_queries]))
        )
        self.section = None

    def view(self, headers: HeaderCache) -> Section:
        if self.section is None:
            assert self.family is not None
            piece, text = headers.get(self.family)
            total = combine(piece, self.tree.total)
            deflated = len(piece.deflated) + self.deflated_size
            self.section = Section((piece.deflated, text), tuple(self.blocks), total, deflated)
        return self.section


class HeaderCache:
    def __init__(self) -> None:
        self.headers: dict[Family, tuple[Piece, bytes]] = {}

    def get(self, family: Family) -> tuple[Piece, bytes]:
        cached = self.headers.get(family)
        if cached is None:
            header = family.header()
            cached = self.headers[family] = (compress_piece(header), header)
        return cached
