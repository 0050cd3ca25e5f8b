"""The filter language: key:value terms, wildcards, AND/OR/NOT, parentheses."""

from __future__ import annotations

import pytest

from simulator.query import QuerySyntaxError, Tags, parse_query, parse_tags

CHECKOUT: Tags = {"client_service": ("checkout",), "env": ("prod",), "team": ("payments", "sre")}
CART: Tags = {"client_service": ("cart",), "env": ("staging",), "team": ("storefront",)}
QUOTED: Tags = {"client_service": ('legacy "quoted" svc',), "env": ("prod",)}


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("", {"checkout", "cart", "quoted"}),
        ("client_service:checkout", {"checkout"}),
        ("client_service:c*", {"checkout", "cart"}),
        ("client_service:*out", {"checkout"}),
        ("env:prod AND client_service:cart", set()),
        ("env:prod client_service:checkout", {"checkout"}),
        ("env:staging OR client_service:checkout", {"checkout", "cart"}),
        ("NOT env:prod", {"cart"}),
        ("-env:prod", {"cart"}),
        ("env:prod AND NOT (team:sre OR team:storefront)", {"quoted"}),
        ('client_service:"legacy \\"quoted\\" svc"', {"quoted"}),
        ("team:sre", {"checkout"}),
        ("missing_key:*", set()),
    ],
)
def test_query_selects_the_expected_rows(query: str, matches: set[str]) -> None:
    predicate = parse_query(query)
    rows = {"checkout": CHECKOUT, "cart": CART, "quoted": QUOTED}
    assert {name for name, tags in rows.items() if predicate(tags)} == matches


@pytest.mark.parametrize(
    "query",
    [
        "free text",
        "env:(prod",
        "env:prod)",
        "env:prod AND",
        "OR env:prod",
        "bytes:>10",
        "@attr:x",
        'env:"unterminated',
        "env:[a TO b]",
        "env:",
    ],
)
def test_unsupported_syntax_is_an_error(query: str) -> None:
    with pytest.raises(QuerySyntaxError):
        parse_query(query)


def test_tags_are_all_required() -> None:
    predicate = parse_tags("env:prod, client_service:check*")
    assert predicate(CHECKOUT)
    assert not predicate(QUOTED)
    with pytest.raises(QuerySyntaxError):
        parse_tags("env")
