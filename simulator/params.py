"""Validation of request parameters, with Datadog's 400 answers (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simulator.data import DEFAULT_DNS_GROUP_BY
from simulator.errors import ErrorAnswer
from simulator.query import Predicate, QuerySyntaxError, parse_query, parse_tags

MAX_GROUP_BY = 10
MAX_LIMIT = 7500
DEFAULT_LIMIT = 100
DEFAULT_WINDOW = 15 * 60
MAX_CASE_GROUPS_LIMIT = 1000
SERVER_UNGROUPED = "server_ungrouped"


@dataclass(frozen=True, slots=True)
class NetworkQuery:
    keys: tuple[str, ...]
    start: int
    end: int
    limit: int
    filter_key: tuple[str, str]
    predicate: Predicate


@dataclass(frozen=True, slots=True)
class CasesQuery:
    query_filter: str
    groups: tuple[str, ...]
    limit: int
    predicate: Predicate


def _bad(title: str, detail: str) -> ErrorAnswer:
    return ErrorAnswer(400, title, detail)


def int_param(
    params: Mapping[str, str], name: str, *, title: str = "", must_be: str = "an integer"
) -> int | None:
    """A whole-number parameter (None when absent); a 400 with ``title`` (default
    ``Invalid <name>``) saying what it ``must_be`` when it is not one."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return int(raw.strip(), 10)
    except ValueError:
        raise _bad(title or f"Invalid {name}", f"{name} must be {must_be}, got {raw!r}") from None


def _filter(params: Mapping[str, str]) -> tuple[tuple[str, str], Predicate]:
    query, tags = params.get("query", ""), params.get("tags", "")
    try:
        if query.strip():  # query wins over tags
            return ("query", query), parse_query(query)
        return ("tags", tags), parse_tags(tags)
    except QuerySyntaxError as exc:
        name = "query" if query.strip() else "tags"
        raise _bad(f"Invalid {name}", str(exc)) from None


def parse_network_params(params: Mapping[str, str], *, now: int, dns: bool) -> NetworkQuery:
    """Validate the query string shared by the connections and DNS endpoints."""
    end = int_param(params, "to")
    end = now if end is None else end
    start = int_param(params, "from")
    start = end - DEFAULT_WINDOW if start is None else start
    if start >= end:
        raise _bad("Invalid time range", f"from ({start}) must be before to ({end})")
    limit = int_param(params, "limit")
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise _bad("Invalid limit", f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    keys = tuple(dict.fromkeys(k.strip() for k in params.get("group_by", "").split(",")))
    keys = tuple(k for k in keys if k)
    if len(keys) > MAX_GROUP_BY:
        raise _bad(
            "Invalid group_by",
            f"at most {MAX_GROUP_BY} group_by fields are allowed, got {len(keys)}",
        )
    if dns:
        if not keys:
            keys = DEFAULT_DNS_GROUP_BY
        if SERVER_UNGROUPED in keys:
            others = [k for k in keys if k != SERVER_UNGROUPED and k.startswith("server")]
            if others:
                raise _bad(
                    "Invalid group_by",
                    f"{SERVER_UNGROUPED} cannot be combined with other server groupings: "
                    + ", ".join(others),
                )
            keys = tuple(k for k in keys if k != SERVER_UNGROUPED)
    filter_key, predicate = _filter(params)
    return NetworkQuery(keys, start, end, limit, filter_key, predicate)


def _field(obj: Any, name: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise _bad("Bad Request", f"missing required field {where}{name}")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad("Bad Request", f"{where}{name} must be of type {kind.__name__}")
    return value


def parse_cases_body(body: Any) -> CasesQuery:
    """Validate a `/cases/aggregate` request body (already decoded from JSON)."""
    data = _field(body, "data", dict, "")
    kind = _field(data, "type", str, "data.")
    if kind != "aggregate":
        raise _bad("Bad Request", f"data.type must be 'aggregate', got {kind!r}")
    attributes = _field(data, "attributes", dict, "data.")
    query_filter = _field(attributes, "query_filter", str, "data.attributes.")
    group_by = _field(attributes, "group_by", dict, "data.attributes.")
    groups = _field(group_by, "groups", list, "data.attributes.group_by.")
    if not all(isinstance(g, str) and g for g in groups):
        raise _bad("Bad Request", "data.attributes.group_by.groups must be non-empty strings")
    limit = _field(group_by, "limit", int, "data.attributes.group_by.")
    if not 1 <= limit <= MAX_CASE_GROUPS_LIMIT:
        raise _bad(
            "Bad Request",
            f"data.attributes.group_by.limit must be between 1 and {MAX_CASE_GROUPS_LIMIT}",
        )
    try:
        predicate = parse_query(query_filter)
    except QuerySyntaxError as exc:
        raise _bad("Invalid query_filter", str(exc)) from None
    return CasesQuery(query_filter, tuple(groups), limit, predicate)
