"""--config.check: what a configuration costs per hour, against a limit when one is known."""

from __future__ import annotations

import re

import pytest

from exporter.config.errors import ConfigError
from exporter.config.report import UNKNOWN_LIMIT_NOTE, summary
from exporter.config.schema import parse_config

QUERIES = """
connections:
  - {name: a, interval: 1m}
  - {name: b, interval: 30s}
"""


def test_without_an_expectation_the_limit_is_said_to_be_unknown() -> None:
    text = summary(parse_config(QUERIES))
    assert re.search(r"default\s+connections\s+180\s+\(at worst 540\)\s+limit unknown", text), text
    assert UNKNOWN_LIMIT_NOTE in text


def test_an_expected_limit_shows_the_share_used() -> None:
    config = parse_config(
        "datadog:\n  rate_limits:\n    connections: {limit: 100, period: 1h}\n" + QUERIES
    )
    text = summary(config)
    assert re.search(
        r"180\s+\(at worst 540\)\s+of 100 allowed \(100 per 1h\): 180%  OVER THE LIMIT", text
    ), text
    relaxed = parse_config(
        "datadog:\n  rate_limits:\n    connections: {limit: 60, period: 1m}\n" + QUERIES
    )
    assert "of 3600 allowed (60 per 1m): 5%" in summary(relaxed)
    assert UNKNOWN_LIMIT_NOTE not in summary(relaxed)


def test_the_worst_case_with_retries_follows_datadog_max_attempts() -> None:
    text = summary(parse_config("datadog:\n  max_attempts: 5\n" + QUERIES))
    assert "datadog.max_attempts=5 calls per poll" in text
    assert re.search(r"connections\s+180\s+\(at worst 900\)", text), text
    with pytest.raises(ConfigError, match="max_attempts"):
        parse_config("datadog:\n  max_attempts: 0\n" + QUERIES)


def test_expectations_are_validated_per_endpoint() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("datadog:\n  rate_limits:\n    metrics: {limit: 0, period: 1m}\n")
    assert "datadog.rate_limits.metrics" in str(caught.value)
