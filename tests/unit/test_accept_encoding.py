"""Accept-Encoding negotiation for /metrics (RFC 9110 section 12.5.3)."""

from __future__ import annotations

import pytest

from exporter.server import accepts_gzip


@pytest.mark.parametrize(
    "header",
    [
        "gzip",
        "GZIP",
        "x-gzip",
        "gzip, deflate, br",
        "deflate;q=0.5, gzip;q=0.8",
        "gzip;q=0.001",
        "gzip;Q=1",
        "gzip ; q = 0.5",
        "gzip;level=9;q=1",
        "*",
        "*;q=0, gzip",
        "gzip, *;q=0",
        "identity, gzip",  # a tie: gzip is smaller
        "identity;q=0.5, gzip",
        "  gzip  ",
    ],
)
def test_gzip_is_served(header: str) -> None:
    assert accepts_gzip(header)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "identity",
        "deflate, br",
        "gzip;q=0",
        "gzip;Q=0",
        "gzip; Q=0",
        "GZIP;q=0",
        "gzip;q=0.0",
        "gzip;q=0.000",
        "gzip ; q=0 ",
        "gzip;level=9;q=0",
        "gzip;q=0, *",
        "gzip;q=0, *;q=1",
        "*;q=0",
        "identity;q=1, gzip;q=0.5",
        "*;q=1, gzip;q=0.5",  # the wildcard covers identity, preferred over gzip
        "gzip;q=abc",  # an unreadable quality: the entry is ignored
        "gzip;q=nan",
        "gzip;q=-1",
        "gzip;q=2",
        ",,;",
    ],
)
def test_gzip_is_not_served(header: str) -> None:
    assert not accepts_gzip(header)
