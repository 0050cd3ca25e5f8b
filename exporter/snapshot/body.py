"""What scrapes read: the immutable Body of /metrics and the writes it is served in.

A :class:`Body` is built by the store (:mod:`.store`) and never changed: a scrape that
started on one finishes on it, whatever is published meanwhile. Reading it renders,
compresses and locks nothing; it copies bytes as they are, and inflates only the chunks
whose text the store did not keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..gzipjoin import NOTHING, Compressed, Piece, combine, compress_piece, gzip_member, inflate
from .tuning import DEFAULT_TUNING, SnapshotTuning

Chunk = tuple[bytes, bytes | None]  # one query's raw-deflated piece of a family, its text if kept
EMPTY = Piece(b"", 0, 0)


@dataclass(frozen=True, slots=True)
class Payload:
    """What one scrape writes: its length, then its parts in order (produced while writing)."""

    size: int
    parts: Iterator[bytes]


@dataclass(frozen=True, slots=True)
class Block:
    """The non-empty chunks of up to ``block_queries`` consecutive queries for one family."""

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


NO_CHUNKS = Block()


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
    of about ``write_batch_bytes`` (plain ones: ``inflate_batch_bytes``, inflating the chunks
    whose text is not kept as they go): a copy of bytes, with Python work per block rather
    than per chunk where the chunks are small.
    """

    sections: tuple[Section, ...] = ()
    total: Piece = EMPTY  # CRC-32 and size of the plain text
    deflated_size: int = 0
    tuning: SnapshotTuning = DEFAULT_TUNING

    def plain(self, tail: bytes, prerendered: Compressed = NOTHING) -> Payload:
        """The text, then ``prerendered``'s text, then ``tail`` (the self-metrics: the part
        kept rendered between scrapes, and the part rendered for this one)."""
        size = self.total.size + prerendered.total.size + len(tail)
        return Payload(size, self._plain_parts(tail, prerendered))

    def _plain_parts(self, tail: bytes, prerendered: Compressed) -> Iterator[bytes]:
        tuning = self.tuning
        runs = self._plain_runs(tail, prerendered)
        yield from _writes(runs, tuning.inflate_batch_bytes, tuning.direct_write_bytes)

    def _plain_runs(
        self, tail: bytes, prerendered: Compressed
    ) -> Iterator[tuple[tuple[bytes, ...], int]]:
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
        yield prerendered.texts, prerendered.total.size
        yield (tail,), len(tail)

    def gzip(self, tail: bytes, prerendered: Compressed = NOTHING) -> Payload:
        """A single gzip member: the compressed chunks as they are, then ``prerendered``'s
        pieces as they are, then ``tail`` compressed (the only compression of a scrape)."""
        last = compress_piece(tail)
        ends = gzip_member([last.deflated], combine(combine(self.total, prerendered.total), last))
        size = self.deflated_size + prerendered.deflated_size + sum(map(len, ends))
        tuning = self.tuning
        runs = self._gzip_runs(ends, prerendered)
        parts = _writes(runs, tuning.write_batch_bytes, tuning.direct_write_bytes)
        return Payload(size, parts)

    def _gzip_runs(
        self, ends: list[bytes], prerendered: Compressed
    ) -> Iterator[tuple[tuple[bytes, ...], int]]:
        yield (ends[0],), len(ends[0])
        for section in self.sections:
            yield (section.header[0],), len(section.header[0])
            for block in section.blocks:
                yield block.deflated, block.deflated_size
        yield prerendered.deflated, prerendered.deflated_size
        rest = tuple(ends[1:])
        yield rest, sum(map(len, rest))


def _writes(
    runs: Iterable[tuple[tuple[bytes, ...], int]], batch: int, direct: int
) -> Iterator[bytes]:
    """The parts of ``runs`` (each: parts and their total length) as writes: runs of small
    parts joined into about ``batch`` bytes, parts of ``direct`` bytes and more on average (a
    large query's family) as they are."""
    pending: list[bytes] = []
    size = 0
    for parts, total in runs:
        if not parts:
            continue
        if total >= direct * len(parts):
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
