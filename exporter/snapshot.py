"""The rendered data every scrape serves: one immutable snapshot per query, one body for all.

A poll publishes a :class:`QuerySnapshot` (each of its families compressed once). The store
files each family's chunk under the family's name, in configuration order of the queries,
and swaps in a new :class:`Body`: the families of all queries grouped by name under one
HELP/TYPE header each, as the exposition format requires. Scrapes only read the current
Body; they never render, compress or lock, and copy bytes as they are.

Publishing costs what the published query costs, not what all queries cost: per family name
the store keeps its chunks in blocks of :data:`BLOCK_QUERIES` queries and a tree of CRC-32s
over them, so a publish rebuilds one block and one root-to-leaf path of the tree (log2 of the
query count in CRC combines) per family of the query, and never reads another query's bytes.

The compressed form is always kept: gzip scrapes (what Prometheus asks for) copy it as it
is. The text is kept too while all kept text fits in PLAIN_TEXT_BUDGET_BYTES: then a plain
scrape (curl, a human) is a copy as well. Beyond the budget only the compressed form stays,
since it is a fraction of the text and the text is what made memory grow with the series;
plain scrapes then inflate those pieces while writing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from .exposition import Family, Rendered
from .gzipjoin import Piece, combine, compress_piece, crc32_combine, gzip_member, inflate

QueryKey = tuple[str, str]  # (collector, query name)
Chunk = tuple[bytes, bytes | None]  # one query's raw-deflated piece of a family, its text if kept
_EMPTY = Piece(b"", 0, 0)
# Plain text kept beside the compressed pieces, across all queries. One 7,500-row connections
# query (~18 MB of text) fits, so plain scrapes of a typical deployment are a copy; at a
# million samples and more the compressed form alone keeps memory small.
PLAIN_TEXT_BUDGET_BYTES = 24 * 1024 * 1024
# Plain scrapes inflate (and join) about this much text per step, on the event loop between
# socket writes: small enough not to stall other requests, and a worker thread would make the
# loop wait for the GIL at every hand-over.
INFLATE_BATCH_BYTES = 1 << 20
# Scrapes join small chunks into writes of about this size: one write per chunk would cost
# more than the copy at thousands of queries, and each write is a wait for the event loop.
# Chunks of at least DIRECT_WRITE_BYTES (on average over a block) are written as they are.
WRITE_BATCH_BYTES = 1 << 20
DIRECT_WRITE_BYTES = 1 << 16
# Queries per block of a family's chunk list: a publish rebuilds one block of this many slots
# and the list of blocks (queries / BLOCK_QUERIES entries), both reference copies.
BLOCK_QUERIES = 64


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


@dataclass(frozen=True, slots=True)
class Payload:
    """What one scrape writes: its length, then its parts in order (produced while writing)."""

    size: int
    parts: Iterator[bytes]


@dataclass(frozen=True, slots=True)
class Block:
    """The non-empty chunks of up to BLOCK_QUERIES consecutive queries for one family."""

    chunks: tuple[Chunk, ...] = ()
    deflated: tuple[bytes, ...] = ()
    deflated_size: int = 0
    texts: tuple[bytes, ...] | None = ()  # None when some chunk's text is not kept
    text_size: int = 0  # of the kept texts

    @classmethod
    def of(cls, chunks: tuple[Chunk, ...]) -> Block:
        deflated = tuple(chunk[0] for chunk in chunks)
        texts = tuple(chunk[1] for chunk in chunks if chunk[1] is not None)
        kept = texts if len(texts) == len(chunks) else None
        return cls(chunks, deflated, sum(map(len, deflated)), kept, sum(map(len, texts)))


_NO_CHUNKS = Block()


@dataclass(frozen=True, slots=True)
class Section:
    """One family name's part of the body: its header, then every query's chunk of it."""

    header: Chunk
    blocks: tuple[Block, ...]
    total: Piece  # CRC-32 and size of the text of the header and all chunks
    deflated_size: int


@dataclass(frozen=True, slots=True)
class Body:
    """The data part of /metrics, immutable: a scrape that started on it finishes on it.

    Scrapes write big chunks as they are and join small ones, a block at a time, into writes
    of about WRITE_BATCH_BYTES (plain ones: ``inflate_batch_bytes``, inflating the chunks
    whose text is not kept as they go): a copy of bytes, with Python work per block rather
    than per chunk where the chunks are small.
    """

    sections: tuple[Section, ...] = ()
    total: Piece = _EMPTY  # CRC-32 and size of the plain text
    deflated_size: int = 0
    inflate_batch_bytes: int = INFLATE_BATCH_BYTES

    def plain(self, tail: bytes) -> Payload:
        """The text, then ``tail`` (the self-metrics)."""
        return Payload(self.total.size + len(tail), self._plain_parts(tail))

    def _plain_parts(self, tail: bytes) -> Iterator[bytes]:
        yield from _writes(self._plain_runs(tail), self.inflate_batch_bytes)

    def _plain_runs(self, tail: bytes) -> Iterator[tuple[tuple[bytes, ...], int]]:
        for section in self.sections:
            header = section.header[1]
            assert header is not None  # headers are always kept
            yield (header,), len(header)
            for block in section.blocks:
                if block.texts is not None:
                    yield block.texts, block.text_size
                    continue
                for deflated, kept in block.chunks:
                    text = inflate(deflated) if kept is None else kept
                    yield (text,), len(text)
        yield (tail,), len(tail)

    def gzip(self, tail: bytes) -> Payload:
        """A single gzip member: the compressed chunks as they are, then ``tail`` compressed."""
        last = compress_piece(tail)
        ends = gzip_member([last.deflated], combine(self.total, last))
        size = self.deflated_size + sum(map(len, ends))
        return Payload(size, _writes(self._gzip_runs(ends), WRITE_BATCH_BYTES))

    def _gzip_runs(self, ends: list[bytes]) -> Iterator[tuple[tuple[bytes, ...], int]]:
        yield (ends[0],), len(ends[0])
        for section in self.sections:
            yield (section.header[0],), len(section.header[0])
            for block in section.blocks:
                yield block.deflated, block.deflated_size
        rest = tuple(ends[1:])
        yield rest, sum(map(len, rest))


def _writes(runs: Iterable[tuple[tuple[bytes, ...], int]], batch: int) -> Iterator[bytes]:
    """The parts of ``runs`` (each: parts and their total length) as writes: runs of small
    parts joined into about ``batch`` bytes, big parts (a large query's family) as they are."""
    pending: list[bytes] = []
    size = 0
    for parts, total in runs:
        if total >= DIRECT_WRITE_BYTES * len(parts):
            if pending:
                yield b"".join(pending)
                pending, size = [], 0
            yield from parts
            continue
        pending.extend(parts)
        size += total
        if size >= batch:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


class _CrcTree:
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


class _Group:
    """Everything the store keeps for one family name, changed in place by publishes."""

    def __init__(self, capacity: int) -> None:
        # Query rank -> (index of the family in that query, the query's Family): the member
        # with the smallest (rank, index) places the family in the body and gives its header.
        self.members: dict[int, tuple[int, Family]] = {}
        self.anchor: tuple[int, int] = (1 << 62, 0)
        self.family: Family | None = None
        self.slots: list[Chunk | None] = [None] * capacity  # by rank; None: nothing to serve
        self.blocks: list[Block] = [_NO_CHUNKS] * (capacity // BLOCK_QUERIES)
        self.tree = _CrcTree(capacity)
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
        self.refill_block(rank // BLOCK_QUERIES)

    def refill_block(self, block: int) -> None:
        start = block * BLOCK_QUERIES
        self.blocks[block] = Block.of(
            tuple(filter(None, self.slots[start : start + BLOCK_QUERIES]))
        )
        self.section = None

    def view(self, headers: _HeaderCache) -> Section:
        if self.section is None:
            assert self.family is not None
            piece, text = headers.get(self.family)
            total = combine(piece, self.tree.total)
            deflated = len(piece.deflated) + self.deflated_size
            self.section = Section((piece.deflated, text), tuple(self.blocks), total, deflated)
        return self.section


class _HeaderCache:
    def __init__(self) -> None:
        self.headers: dict[Family, tuple[Piece, bytes]] = {}

    def get(self, family: Family) -> tuple[Piece, bytes]:
        cached = self.headers.get(family)
        if cached is None:
            header = family.header()
            cached = self.headers[family] = (compress_piece(header), header)
        return cached


class SnapshotStore:
    """The current snapshot of every query and the Body built from them.

    ``publish`` and ``drop`` change only the published query's chunks and swap in a new
    Body; ``set_order`` (start-up, reload) files every snapshot again. Callers serialize
    them (the scheduler does, off the event loop); scrapes read ``body`` at any time.
    """

    def __init__(
        self,
        order: Iterable[QueryKey] = (),
        plain_budget: int = PLAIN_TEXT_BUDGET_BYTES,
        inflate_batch_bytes: int = INFLATE_BATCH_BYTES,
    ) -> None:
        self.plain_budget = plain_budget
        self.inflate_batch_bytes = inflate_batch_bytes
        self._snapshots: dict[QueryKey, QuerySnapshot] = {}
        self._kept_text = 0  # bytes of text kept across all snapshots
        self._headers = _HeaderCache()
        self._ranks: dict[QueryKey, int] = {}
        self._groups: dict[str, _Group] = {}
        self._capacity = BLOCK_QUERIES
        self.body = Body(inflate_batch_bytes=inflate_batch_bytes)
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
            if self._kept_text + snapshot.size > self.plain_budget:
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
                group = self._groups[family.name] = _Group(self._capacity)
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
        capacity = BLOCK_QUERIES
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
                    group = self._groups[family.name] = _Group(capacity)
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
        total = _EMPTY
        for section in sections:
            total = combine(total, section.total)
        deflated = sum(section.deflated_size for section in sections)
        self.body = Body(sections, total, deflated, self.inflate_batch_bytes)
