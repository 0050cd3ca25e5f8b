"""The backfill's step grid, UTC days, runs of failed windows, and the cost projection."""

from __future__ import annotations

import pytest

from exporter.backfill.grid import (
    Lane,
    day_bounds,
    day_of,
    days,
    grid,
    projection,
    rate_summary,
    runs,
)

DAY = 86400
MIDNIGHT = 1_714_521_600  # 2024-05-01T00:00:00Z


def test_grid_is_the_multiples_of_the_step_inside_start_and_end() -> None:
    assert list(grid(MIDNIGHT - 1, MIDNIGHT + 601, 300)) == [
        MIDNIGHT,
        MIDNIGHT + 300,
        MIDNIGHT + 600,
    ]
    assert list(grid(MIDNIGHT, MIDNIGHT + 600, 300)) == [MIDNIGHT, MIDNIGHT + 300, MIDNIGHT + 600]
    assert list(grid(MIDNIGHT + 1, MIDNIGHT + 299, 300)) == []
    with pytest.raises(ValueError, match="at least 1s"):
        grid(0, 10, 0)


def test_fourteen_days_at_five_minutes_is_4032_calls_per_query() -> None:
    points = grid(MIDNIGHT - 14 * DAY, MIDNIGHT - 1, 300)
    assert len(points) == 4032


def test_two_runs_with_one_step_share_their_instants() -> None:
    first = set(grid(MIDNIGHT + 17, MIDNIGHT + 3 * 3600, 600))
    second = set(grid(MIDNIGHT + 1234, MIDNIGHT + 5 * 3600, 600))
    overlap = first & second
    assert overlap and all(t % 600 == 0 for t in overlap)


def test_points_are_grouped_by_utc_day() -> None:
    points = grid(MIDNIGHT - 600, MIDNIGHT + 600, 300)
    assert [(day, len(ts)) for day, ts in days(points)] == [("2024-04-30", 2), ("2024-05-01", 3)]
    assert day_of(MIDNIGHT) == "2024-05-01" and day_of(MIDNIGHT - 1) == "2024-04-30"
    assert day_bounds("2024-05-01") == (MIDNIGHT, MIDNIGHT + DAY)


def test_runs_group_consecutive_grid_points() -> None:
    assert runs([0, 60, 120, 300, 360, 600], 60) == [(0, 120), (300, 360), (600, 600)]
    assert runs([], 60) == []


def test_projection_gives_calls_per_query_and_hours_at_the_known_limit() -> None:
    lines = projection(
        [("connections/svc", 300, 4032), ("connections/zones", 300, 4032), ("dns/names", 60, 50)],
        [
            Lane("default", "connections", 8064, limit=1000, period=3600),
            Lane("default", "dns", 50),
        ],
    )
    text = "\n".join(lines)
    assert "connections/svc" in text and "one window every 5m: 4,032 calls per query" in text
    assert "one window every 1m: 50 calls per query" in text
    assert "default connections" in text
    assert "8,064 calls, ~8.1 hours at the known limit (1000 per 1h)" in text
    assert "50 calls, limit unknown until Datadog's first answer" in text
    assert Lane("a", "dns", 30, limit=1000, period=3600).hours == pytest.approx(0.03)


def test_a_run_shorter_than_a_rate_limit_period_is_not_extrapolated_to_an_hour() -> None:
    # 200 calls in 4s: "180,000 per hour" would read like 3x Datadog's limit; it was 20%.
    text, fields = rate_summary(200, 4.0, 1000, 60.0, [])
    assert text == (
        "200 calls in 4s, within one rate-limit period (1000 calls per 1m, Datadog's limit: "
        "60,000 per hour); too short to measure a rate per hour"
    )
    assert "calls_per_hour" not in fields and fields["limit_per_hour"] == 60000


def test_the_rate_per_hour_is_measured_over_whole_rate_limit_periods() -> None:
    text, fields = rate_summary(2000, 250.0, 1000, 60.0, [900, 1000, 950])
    assert "95% of the allowed calls in 3 full rate-limit periods = 57,000 per hour" in text
    assert "(Datadog's limit: 60,000 per hour)" in text
    assert fields["calls_per_hour"] == 57000 and fields["full_periods"] == 3


def test_without_rate_limit_headers_no_rate_is_claimed() -> None:
    text, _ = rate_summary(12, 3.0, None, None, [])
    assert text == "12 calls in 3s; Datadog sent no rate-limit headers"
