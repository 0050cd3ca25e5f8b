"""Gzip bodies assembled from separately compressed pieces, without recompressing.

Each piece is raw-deflated once (when its query is polled) and ended with a sync flush, which
leaves it byte-aligned and non-final; deflate pieces concatenated that way form one valid
stream. The body is then a gzip header, the pieces, an empty final block and a trailer whose
CRC-32 is combined from the pieces' own CRCs. So a scrape asking for gzip costs a copy of
already-compressed bytes, and every HTTP client sees one ordinary gzip member.

Compression uses ISA-L (``isal``): at its level 1 it is much faster than zlib's level 1 on
exposition text and compresses about as well, which is what keeps compressing every poll
cheap. Its output is ordinary deflate, readable by any gzip decoder.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from isal import isal_zlib

LEVEL = 1
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name/mtime, OS unknown
_FINAL_EMPTY_BLOCK = b"\x03\x00"  # BFINAL=1, fixed Huffman, end-of-block

crc32_combine = isal_zlib.crc32_combine  # CRC-32 of A+B from crc(A), crc(B) and len(B)


@dataclass(frozen=True, slots=True)
class Piece:
    """A byte-aligned raw-deflate segment plus what the gzip trailer needs to know of it."""

    deflated: bytes
    crc: int
    size: int


def compress_piece(data: bytes) -> Piece:
    """Raw-deflate ``data`` into a piece that can be followed by any other piece."""
    compressor = isal_zlib.compressobj(LEVEL, isal_zlib.DEFLATED, -15)
    deflated = compressor.compress(data) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)
    return Piece(deflated, isal_zlib.crc32(data), len(data))


def inflate(deflated: bytes) -> bytes:
    """The text a piece's raw-deflate bytes were compressed from (pieces need no neighbours
    to be read)."""
    return isal_zlib.decompressobj(-15).decompress(deflated)


def combine(first: Piece, second: Piece) -> Piece:
    """The CRC and size of ``first`` followed by ``second`` (``deflated`` is left empty)."""
    if not second.size:
        return first
    if not first.size:
        return Piece(b"", second.crc, second.size)
    return Piece(b"", crc32_combine(first.crc, second.crc, second.size), first.size + second.size)


def gzip_member(deflated: Iterable[bytes], total: Piece) -> list[bytes]:
    """One gzip member: header, the raw-deflate pieces in order, end block, trailer.

    ``total`` carries the CRC-32 and size of everything the pieces decompress to.
    """
    trailer = struct.pack("<II", total.crc, total.size & 0xFFFFFFFF)
    return [_HEADER, *deflated, _FINAL_EMPTY_BLOCK, trailer]


@dataclass(frozen=True, slots=True)
class Compressed:
    """Text compressed before the scrapes that serve it (the per-query self-metrics): its
    parts as text and as raw-deflate pieces, ``texts[i]`` compressed into ``deflated[i]``,
    and the CRC-32 and size of all the text. A gzip body joins the pieces as they are."""

    texts: tuple[bytes, ...]
    deflated: tuple[bytes, ...]
    total: Piece
    deflated_size: int

    @classmethod
    def of(cls, pieces: Iterable[tuple[bytes, Piece]]) -> Compressed:
        """From (text, its piece) pairs, in order; empty texts are left out."""
        texts: list[bytes] = []
        deflated: list[bytes] = []
        total = NO_TEXT
        for text, piece in pieces:
            if piece.size:
                texts.append(text)
                deflated.append(piece.deflated)
                total = combine(total, piece)
        return cls(tuple(texts), tuple(deflated), total, sum(map(len, deflated)))


NO_TEXT = Piece(b"", 0, 0)
NOTHING = Compressed((), (), NO_TEXT, 0)
