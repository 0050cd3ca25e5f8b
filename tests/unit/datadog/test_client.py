"""Which error bodies say nothing about their cause (the bare 400 of an organisation
without Cloud Network Monitoring), whatever shape Datadog chose."""

from __future__ import annotations

import pytest

from exporter.datadog.client import has_no_details


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  \n",
        b"{}",
        b'{"errors": []}',
        b'{"errors": ["Bad Request"]}',
        b'{"errors": ["bad request", "Bad Request"]}',
        b'{"errors": [{"status": "400", "title": "Bad Request"}]}',
        b'{"errors": [{"status": 400}]}',
        b'{"errors": [{"code": "bad_request", "title": "Bad Request"}]}',
        b'{"errors": [{"title": "Bad Request", "detail": ""}]}',
    ],
)
def test_bodies_that_only_repeat_the_status_have_no_details(body: bytes) -> None:
    assert has_no_details(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"errors": ["Invalid limit"]}',
        b'{"errors": [{"status": "400", "title": "Bad Request", "detail": "limit > 7500"}]}',
        b'{"errors": [{"title": "Generic Error", "detail": "oops"}]}',
        b'{"errors": [{"title": "Bad Request", "source": {"parameter": "limit"}}]}',
        b'{"errors": "Bad Request"}',
        b'{"errors": ["Bad Request"], "message": "CNM is not enabled"}',
        b"<html><title>400 Bad Request</title></html>",
        b"Bad Request",
        b"[]",
    ],
)
def test_bodies_that_say_something_keep_their_say(body: bytes) -> None:
    assert not has_no_details(body)


def test_a_body_nested_too_deep_to_read_has_details_of_its_own() -> None:
    """JSON nested 100,000 levels deep (the fuzz test's 400 body) is not read as "no
    details"; before, its RecursionError escaped and failed the poll as internal_error."""
    body = b'{"errors": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert not has_no_details(body)
