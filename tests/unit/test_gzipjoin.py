"""Gzip bodies joined from separately compressed pieces decompress to the joined text."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.gzipjoin import Piece, combine, compress_piece, crc32_combine, gzip_member, inflate


@given(st.binary(), st.binary())
def test_crc_combine_matches_crc_of_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=3000), max_size=12))
def test_pieces_join_into_one_valid_gzip_member(chunks: list[bytes]) -> None:
    pieces = [compress_piece(chunk) for chunk in chunks]
    assert [inflate(piece.deflated) for piece in pieces] == chunks
    total = Piece(b"", 0, 0)
    for piece in pieces:
        total = combine(total, piece)
    joined = b"".join(gzip_member([piece.deflated for piece in pieces], total))
    assert gzip.decompress(joined) == b"".join(chunks)
    # A single member: a decoder that stops after the first member (as some HTTP clients
    # do) still sees everything.
    decoder = zlib.decompressobj(wbits=31)
    assert decoder.decompress(joined) == b"".join(chunks)
    assert decoder.eof and decoder.unused_data == b""
