"""The backfill's messages name the collectors the registry's ``history`` flag gives, so a
collector added with (or without) history is named right without editing the backfill."""

from __future__ import annotations

import dataclasses

import pytest

from exporter.backfill import source
from exporter.backfill.cli import build_parser
from exporter.collectors.registry import REGISTRY


def test_help_names_every_collector_with_history_and_none_without() -> None:
    description = build_parser().description or ""
    for entry in REGISTRY:
        assert (entry.section in description) is entry.history, entry.section


def test_help_follows_the_history_flag_when_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    flipped = tuple(dataclasses.replace(entry, history=not entry.history) for entry in REGISTRY)
    monkeypatch.setattr(source, "REGISTRY", flipped)
    description = build_parser().description or ""
    for entry in flipped:
        assert (entry.section in description) is entry.history, entry.section


def test_sections_are_spoken_as_a_list() -> None:
    assert source.spoken(["connections"], "and") == "connections"
    assert source.spoken(["connections", "dns"], "or") == "connections or dns"
    assert source.spoken(["a", "b", "c"], "and") == "a, b and c"
