"""Gzip bodies assembled from separately compressed pieces, without recompressing.

Each piece is raw-deflated once (when its query is polled) and ended with a sync flush, which
leaves it byte-aligned and non-final; deflate pieces concatenated that way form one valid
stream. The body is then a gzip header, the pieces, an empty final block and a trailer whose
CRC-32 is combined from the pieces' own CRCs. So a scrape asking for gzip costs a copy of
already-compressed bytes, and every HTTP client sees one ordinary gzip member.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

# Level 1: exposition text repeats itself so much that higher levels gain little and cost
# several times the CPU on every poll.
LEVEL = 1
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no name/mtime, OS unknown
_FINAL_EMPTY_BLOCK = b"\x03\x00"  # BFINAL=1, fixed Huffman, end-of-block
_POLY = 0xEDB88320


@dataclass(frozen=True, slots=True)
class Piece:
    """A byte-aligned raw-deflate segment plus what the gzip trailer needs to know of it."""

    deflated: bytes
    crc: int
    size: int


def compress_piece(data: bytes) -> Piece:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    deflated = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return Piece(deflated, zlib.crc32(data), len(data))


def _multmodp(a: int, b: int) -> int:
    """Multiply two polynomials modulo the CRC-32 polynomial (bit-reflected)."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return p


def _x2n_table() -> list[int]:
    table = []
    p = 1 << 30  # x^1
    table.append(p)
    for _ in range(1, 32):
        p = _multmodp(p, p)
        table.append(p)
    return table


_X2N = _x2n_table()


def _x8nmodp(n: int) -> int:
    """x^(8n) modulo the polynomial: the shift that appending n bytes applies to a CRC."""
    p = 1 << 31  # x^0
    k = 3
    while n:
        if n & 1:
            p = _multmodp(_X2N[k & 31], p)
        n >>= 1
        k += 1
    return p


def crc32_combine(crc1: int, crc2: int, size2: int) -> int:
    """CRC-32 of A+B from crc(A), crc(B) and len(B) (zlib's crc32_combine)."""
    return _multmodp(_x8nmodp(size2), crc1) ^ crc2


def gzip_member(pieces: Iterable[bytes], crc: int, size: int) -> list[bytes]:
    """One gzip member around raw-deflate ``pieces`` holding ``size`` bytes with ``crc``."""
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return [_HEADER, *pieces, _FINAL_EMPTY_BLOCK, trailer]
