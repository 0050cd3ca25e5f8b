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

A count beyond float64's range, which Prometheus could not read, yields no sample and is
counted in ``Rendered.invalid_values``.
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
from .base import ApiRequest, DecodeError
from .common import PolledJob, UnreadableNumber, decode, decoding, label_prefix, number

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


# Counts are kept as JSON text and decoded one by one, so a number beyond float64 costs only
# its own sample (decoding it as a number would fail the whole answer).
class _Group(msgspec.Struct, gc=False):
    group: str
    value: list[msgspec.Raw]


class _Attributes(msgspec.Struct, gc=False):
    total: msgspec.Raw = msgspec.Raw()
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
    invalid = 0
    try:
        total = number(attributes.total, "unexpected cases answer: total")
    except UnreadableNumber:
        total, invalid = None, 1
    prefix = "{" + label_prefix(query_name, account)
    room = max_series - (total is not None)
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
        try:
            count = number(group.value[0], "unexpected cases answer: value")
        except UnreadableNumber:
            invalid += 1
            continue
        if count is None:
            raise DecodeError("unexpected cases answer: value: Expected `int | float`, got `null`")
        labels = f'{prefix},{label_name}="{escape_label_value(group.group)}"}} '
        lines.append(f"{CASES.name}{labels}{format_value(count)}\n")
    families = []
    if lines:
        families.append(RenderedFamily(CASES, "".join(lines).encode()))
    if total is not None:
        text = f"{ALL_GROUPS.name}{prefix}}} {format_value(total)}\n"
        families.append(RenderedFamily(ALL_GROUPS, text.encode()))
    series = len(lines) + (total is not None)
    return Rendered(
        families=tuple(families), series=series, dropped_rows=dropped, invalid_values=invalid
    )


@dataclass(frozen=True)
class CasesJob(PolledJob[CasesQuery]):
    """A configured Case Management query, ready to poll."""

    collector: str = "cases"
    endpoint: str = ENDPOINT

    def request(self, now: float) -> ApiRequest:
        return ApiRequest(ENDPOINT, "POST", PATH, json_body=request_body(self.settings))

    def render(self, body: bytes) -> Rendered:
        with decoding("cases"):
            return render_answer(
                body,
                self.name,
                group_label_name(self.settings.group_by),
                self.series_account,
                self.settings.max_series,
            )
