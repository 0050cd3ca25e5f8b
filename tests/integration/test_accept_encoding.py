"""/metrics honours the scraper's Accept-Encoding, parameters in any case, several headers."""

from __future__ import annotations

import gzip

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from exporter.selfmetrics import SelfMetrics
from exporter.server import ServerParts, create_app
from exporter.snapshot import SnapshotStore

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    context = ServerParts(SnapshotStore(), SelfMetrics(), lambda: [])
    context.ready.set()
    return await aiohttp_client(create_app(context))


@pytest.mark.parametrize(
    ("headers", "gzipped"),
    [
        ([("Accept-Encoding", "gzip")], True),
        ([("Accept-Encoding", "gzip;Q=0")], False),
        ([("Accept-Encoding", "gzip;q=0.000, identity")], False),
        ([("Accept-Encoding", "*;q=0, GZIP")], True),
        ([("Accept-Encoding", "identity"), ("Accept-Encoding", "gzip")], True),
        ([("Accept-Encoding", "gzip"), ("Accept-Encoding", "gzip;q=0")], True),
        ([("Accept-Encoding", "br"), ("Accept-Encoding", "*;q=0")], False),
    ],
)
async def test_gzip_only_when_the_scraper_accepts_it(
    client: Client, headers: list[tuple[str, str]], gzipped: bool
) -> None:
    response = await client.get("/metrics", headers=headers, auto_decompress=False)
    body = await response.read()
    assert response.status == 200
    assert response.headers.get("Content-Encoding") == ("gzip" if gzipped else None)
    text = gzip.decompress(body) if gzipped else body
    assert b"datadog_exporter_build_info" in text
