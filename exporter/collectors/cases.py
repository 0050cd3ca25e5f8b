"""Case Management counts: ``POST /api/v2/cases/aggregate``.

A poll of query ``by_status`` grouped by ``status`` renders:

    datadog_cases{query="by_status",status="OPEN"} 42
    datadog_cases_all_groups{query="by_status"} 100

Each answer group carries one string ``group`` and a list ``value`` whose first number is the
count. How Datadog spells ``group`` when several fields are grouped is undocumented (the
schema has room for one string only), so the string is never split: the label is named after
all the fields joined with ``_`` (``[status, priority]`` -> ``status_priority``) and carries
the group exactly as Datadog sent it (for example ``OPEN,P1``). A wrong guess at splitting
would put values under the wrong field; this cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from ..config.schema import DEFAULT_MAX_SERIES, CasesQuery
from ..exposition import (
    Family,
    Rendered,
    RenderedFamily,
    escape_label_value,
    format_value,
    label_names_for,
)
from .base import ApiRequest
from .common import Number, PolledJob, decode, label_prefix

ENDPOINT = "cases"
PATH = "/api/v2/cases/aggregate"

CASES = Family(
    "datadog_cases",
    "Cases in the group (Datadog Case Management aggregate, first number of the group's value).",
)
ALL_GROUPS = Family(
    "datadog_cases_all_groups",
    "Cases matching the query filter over all groups (Datadog Case Management aggregate total).",
)
FAMILIES = (CASES, ALL_GROUPS)


class _Group(msgspec.Struct, gc=False):
    group: str
    value: list[Number]


class _Attributes(msgspec.Struct, gc=False):
    total: Number | None = None
    groups: list[_Group] = []


class _Data(msgspec.Struct, gc=False):
    attributes: _Attributes


class _Response(msgspec.Struct, gc=False):
    data: _Data


_decoder = msgspec.json.Decoder(_Response)


def group_label_name(fields: list[str]) -> str:
    """The one label a query's groups go under: the field, or the fields joined with ``_``."""
    (name,) = label_names_for(["_".join(fields)])
    return name


def request_body(query: CasesQuery) -> dict[str, object]:
    return {
        "data": {
            "type": "aggregate",
            "attributes": {
                "query_filter": query.query_filter,
                "group_by": {"groups": list(query.group_by), "limit": query.limit},
            },
        }
    }


def render_answer(
    body: bytes,
    query_name: str,
    label_name: str,
    account: str | None = None,
    max_series: int = DEFAULT_MAX_SERIES,
) -> Rendered:
    """Render one answer; groups past ``max_series`` (the total included) are dropped."""
    attributes = decode(_decoder, body, "cases").data.attributes
    prefix = "{" + label_prefix(query_name, account)
    room = max_series - (attributes.total is not None)
    lines: list[str] = []
    seen: set[str] = set()
    dropped = 0
    for index, group in enumerate(attributes.groups):
        # An empty value list is a group without a count: unknown, so no sample.
        if not group.value or group.group in seen:
            continue
        if len(lines) >= room:
            dropped = len(attributes.groups) - index
            break
        seen.add(group.group)
        labels = f'{prefix},{label_name}="{escape_label_value(group.group)}"}} '
        lines.append(f"{CASES.name}{labels}{format_value(group.value[0])}\n")
    families = []
    if lines:
        families.append(RenderedFamily(CASES, "".join(lines).encode()))
    if attributes.total is not None:
        total = f"{ALL_GROUPS.name}{prefix}}} {format_value(attributes.total)}\n"
        families.append(RenderedFamily(ALL_GROUPS, total.encode()))
    series = len(lines) + (attributes.total is not None)
    return Rendered(families=tuple(families), series=series, dropped_rows=dropped)


@dataclass(frozen=True)
class CasesJob(PolledJob[CasesQuery]):
    """A configured Case Management query, ready to poll."""

    collector: str = "cases"
    endpoint: str = ENDPOINT

    def request(self, now: float) -> ApiRequest:
        return ApiRequest(ENDPOINT, "POST", PATH, json_body=request_body(self.settings))

    def render(self, body: bytes) -> Rendered:
        return render_answer(
            body,
            self.name,
            group_label_name(self.settings.group_by),
            self.series_account,
            self.settings.max_series,
        )
