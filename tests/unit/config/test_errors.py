"""Error key paths are the keys the user wrote, whatever pydantic adds to its locations."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from exporter.config.errors import ConfigError, problems_from
from exporter.config.schema import parse_config


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Inner(Strict):
    size: int


class Sample(Strict):
    # Unions make pydantic add the member it tried to the location; a mapping's key adds
    # "[key]". Neither is something the user wrote.
    either: int | list[int] = 0
    nested: list[Inner | bool] = []
    by_name: dict[int, Inner] = {}


def paths(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(raw)
    return [path for path, _ in problems_from(caught.value, raw)]


def test_union_members_and_mapping_keys_are_not_part_of_the_path() -> None:
    assert set(paths({"either": "x"})) == {"either"}
    assert set(paths({"nested": [{"size": "big"}]})) == {"nested[0]", "nested[0].size"}
    assert paths({"by_name": {"a": {"size": 1}}}) == ["by_name.a"]


def test_missing_and_unknown_keys_keep_their_names() -> None:
    assert paths({"by_name": {"1": {}}}) == ["by_name.1.size"]
    assert paths({"colour": "red"}) == ["colour"]


def test_the_configuration_reports_user_paths() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("datadog:\n  rate_limits:\n    metrics: {limit: 0, period: 1m}\n")
    assert [path for path, _ in caught.value.problems] == [
        "datadog.rate_limits.metrics",
        "datadog.rate_limits.metrics.limit",
    ]
