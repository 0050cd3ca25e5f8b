"""A small subset of Datadog's search syntax, used to filter the simulated data.

Supported: `key:value` terms (value bare or "double quoted", `*` wildcards),
AND (also implicit), OR, NOT / leading `-`, parentheses. Anything else raises
QuerySyntaxError, which the API turns into a 400. Pure, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Tags = Mapping[str, Sequence[str]]
Predicate = Callable[[Tags], bool]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_BARE_VALUE = re.compile(r"[^\s()\"\[\]{}<>~]+")
_OPERATORS = ("AND", "OR", "NOT")


class QuerySyntaxError(ValueError):
    """The filter uses syntax the simulator (and this subset) does not support."""


def match_all(_tags: Tags) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(", ")", "OP", "NEG", "TERM"
    text: str
    key: str = ""


def _pattern(value: str) -> Callable[[str], bool]:
    if "*" not in value:
        return value.__eq__
    regex = re.compile(".*".join(re.escape(part) for part in value.split("*")), re.DOTALL)
    return lambda candidate: regex.fullmatch(candidate) is not None


def term_predicate(key: str, value: str) -> Predicate:
    """True when the tag `key` carries a value matching `value` (with `*` wildcards)."""
    matches = _pattern(value)

    def predicate(tags: Tags) -> bool:
        return any(matches(v) for v in tags.get(key, ()))

    return predicate


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise QuerySyntaxError("unterminated quoted value")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char in "()":
            tokens.append(_Token(char, char))
            i += 1
            continue
        if char == "-" and i + 1 < len(text) and not text[i + 1].isspace():
            tokens.append(_Token("NEG", "-"))
            i += 1
            continue
        key_match = _KEY.match(text, i)
        if key_match is None:
            raise QuerySyntaxError(f"unsupported syntax at position {i}: {text[i : i + 20]!r}")
        word = key_match.group(0)
        end = key_match.end()
        if word in _OPERATORS and (end == len(text) or text[end] in " \t\n()"):
            tokens.append(_Token("OP", word))
            i = end
            continue
        if end >= len(text) or text[end] != ":":
            raise QuerySyntaxError(
                f"unsupported syntax at position {i}: free text {word!r} (expected key:value)"
            )
        i = end + 1
        if i < len(text) and text[i] == '"':
            value, i = _read_quoted(text, i)
        else:
            value_match = _BARE_VALUE.match(text, i)
            if value_match is None:
                raise QuerySyntaxError(f"unsupported syntax at position {i}: missing value")
            value = value_match.group(0)
            i = value_match.end()
        tokens.append(_Token("TERM", value, key=word))
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise QuerySyntaxError("unexpected end of query")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek() is not None:
            raise QuerySyntaxError(f"unexpected {self.take().text!r}")
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while (token := self.peek()) is not None and token.kind == "OP" and token.text == "OR":
            self.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda tags: any(p(tags) for p in parts)

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while (token := self.peek()) is not None and token.kind != ")":
            if token.kind == "OP" and token.text == "OR":
                break
            if token.kind == "OP" and token.text == "AND":
                self.take()
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        return lambda tags: all(p(tags) for p in parts)

    def unary(self) -> Predicate:
        token = self.take()
        if token.kind == "NEG" or (token.kind == "OP" and token.text == "NOT"):
            inner = self.unary()
            return lambda tags: not inner(tags)
        if token.kind == "(":
            inner = self.or_expr()
            closing = self.take()
            if closing.kind != ")":
                raise QuerySyntaxError("missing closing parenthesis")
            return inner
        if token.kind == "TERM":
            return term_predicate(token.key, token.text)
        raise QuerySyntaxError(f"unexpected {token.text!r}")


def parse_query(text: str) -> Predicate:
    """Compile a search query; an empty query matches everything."""
    tokens = _tokenize(text)
    if not tokens:
        return match_all
    return _Parser(tokens).parse()


def parse_tags(text: str) -> Predicate:
    """Compile the comma-separated `tags` parameter (`key:value,...`, all must match)."""
    parts: list[Predicate] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition(":")
        if not sep or not key or not value:
            raise QuerySyntaxError(f"tag {item!r} is not key:value")
        parts.append(term_predicate(key, value))
    if not parts:
        return match_all
    return lambda tags: all(p(tags) for p in parts)
