"""A 5xx's Retry-After header, in both of its RFC 9110 forms, as seconds to wait."""

from __future__ import annotations

import pytest

from exporter.datadog.client import retry_after_seconds

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        (" 0 ", 0.0),
        ("Tue, 14 Nov 2023 22:14:05 GMT", 45.0),
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # already past: retry now
        ("99999999", 86400.0),  # beyond any interval: at most a day
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("Tue, 14 Nov 2023 22:14:05", None),  # a date without its zone is not one
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(header, NOW) == seconds
