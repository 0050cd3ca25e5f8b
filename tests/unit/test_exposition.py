"""Label names and values come out as Prometheus parses them back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.exposition import (
    Family,
    escape_label_value,
    format_value,
    label_names_for,
    sanitize_label_name,
)


def parse_one(text: str) -> tuple[dict[str, str], float]:
    families = list(text_string_to_metric_families(text))
    assert len(families) == 1
    (sample,) = families[0].samples
    return sample.labels, sample.value


def test_dotted_field_becomes_underscored_label() -> None:
    assert sanitize_label_name("network.client.ip") == "network_client_ip"
    assert sanitize_label_name("kube-namespace") == "kube_namespace"


def test_leading_digit_and_reserved_prefix_are_made_valid() -> None:
    assert sanitize_label_name("3rd_party") == "_3rd_party"
    assert sanitize_label_name("__name__") == "tag__name__"


def test_fields_clashing_after_sanitizing_keep_distinct_labels() -> None:
    assert label_names_for(["a.b", "a_b", "a-b"]) == ["a_b", "a_b_2", "a_b_3"]


def test_field_named_like_the_query_label_is_exported_prefixed() -> None:
    assert label_names_for(["query", "exported_query"]) == ["exported_query", "exported_query_2"]


@given(st.lists(st.text(min_size=1), min_size=1, max_size=10))
def test_label_names_are_valid_distinct_and_never_query(fields: list[str]) -> None:
    names = label_names_for(fields)
    assert len(set(names)) == len(names) == len(fields)
    assert "query" not in names
    for name in names:
        assert name.isascii() and (name[0].isalpha() or name[0] == "_")
        assert all(c.isalnum() or c == "_" for c in name)
        assert not name.startswith("__")


@given(st.text())
def test_any_label_value_round_trips_through_the_parser(value: str) -> None:
    text = f'# TYPE m gauge\nm{{query="q",v="{escape_label_value(value)}"}} 1\n'
    labels, _ = parse_one(text)
    assert labels == {"query": "q", "v": value}


def test_escaping_covers_the_three_special_characters() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_label_value("zürich 東京 🚀") == "zürich 東京 🚀"


@given(st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats()))
def test_values_round_trip(value: float) -> None:
    _, parsed = parse_one(f"m {format_value(value)}\n")
    if value != value:
        assert parsed != parsed
    else:
        assert parsed == value


def test_family_header_escapes_help() -> None:
    header = Family("m", "line\\one\nline two").header().decode()
    assert header == "# HELP m line\\\\one\\nline two\n# TYPE m gauge\n"
