"""The TIME grammar of backfill --start/--end: RFC 3339, Unix seconds, durations ago."""

from __future__ import annotations

import pytest

from exporter.backfill.timespec import parse_time

NOW = 1_714_600_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T00:00:00Z", 1_714_521_600.0),
        ("2024-05-01t00:00:00z", 1_714_521_600.0),
        ("2024-05-01T02:00:00+02:00", 1_714_521_600.0),
        ("2024-05-01T00:00:00.5Z", 1_714_521_600.5),
        ("1714521600", 1_714_521_600.0),
        ("1714521600.25", 1_714_521_600.25),
        ("14d", NOW - 14 * 86400),
        ("36h", NOW - 36 * 3600),
        ("1h30m", NOW - 5400),
        ("2w", NOW - 14 * 86400),
    ],
)
def test_accepted_forms(text: str, expected: float) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize(
    "text", ["2024-05-01T00:00:00", "2024-05-01", "yesterday", "-5h", "14", "14 d", ""]
)
def test_rejected_forms_name_the_accepted_ones(text: str) -> None:
    if text == "14":  # digits alone are Unix seconds, not a duration
        assert parse_time(text, NOW) == 14.0
        return
    with pytest.raises(ValueError, match=r"RFC 3339.*Unix seconds.*14d"):
        parse_time(text, NOW)
