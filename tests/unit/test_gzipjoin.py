"""Gzip bodies joined from separately compressed pieces decompress to the joined text."""

from __future__ import annotations

import gzip
import zlib
from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.gzipjoin import Piece, combine, compress_piece, compress_pieces, crc32_combine
from exporter.snapshot import Body


@given(st.binary(), st.binary())
def test_crc_combine_matches_crc_of_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=3000), max_size=12), st.binary(max_size=500))
def test_body_of_pieces_is_one_valid_gzip_member(chunks: list[bytes], tail: bytes) -> None:
    pieces = compress_pieces(chunks)
    total = Piece(b"", 0, 0)
    for piece in pieces:
        total = combine(total, piece)
    body = Body(pieces=tuple(pieces), total=total)
    assert b"".join(body.plain_with(tail)) == b"".join(chunks) + tail
    joined = b"".join(body.gzip_with(tail))
    assert gzip.decompress(joined) == b"".join(chunks) + tail
    # A single member: a decoder that stops after the first member (as some HTTP clients
    # do) still sees everything.
    decoder = zlib.decompressobj(wbits=31)
    assert decoder.decompress(joined) == b"".join(chunks) + tail
    assert decoder.eof and decoder.unused_data == b""


def test_polls_compressing_at_once_each_get_their_own_pieces_in_order() -> None:
    """The helper thread is shared: concurrent polls must not mix up or reorder pieces."""
    polls = [
        [f"poll {poll} family {family}\n".encode() * 5000 for family in range(9)]
        for poll in range(6)
    ]
    with ThreadPoolExecutor(max_workers=len(polls)) as pool:
        results = list(pool.map(compress_pieces, polls))
    for texts, pieces in zip(polls, results, strict=True):
        assert pieces == tuple(compress_piece(text) for text in texts)
