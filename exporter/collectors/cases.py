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

from dataclasses import dataclass, replace

import msgspec

from ..config.schema import DEFAULT_MAX_SERIES, CasesQuery
from ..exposition import (
    ACCOUNT_IF_CONFIGURED,
    Family,
    Rendered,
    RenderedFamily,
    escape_label_value,
    format_value,
    label_names_for,
)
from .helpers import (
    NOT_AVAILABLE,
    Number,
    PolledJob,
    UnreadableNumber,
    decode,
    decoding,
    keep_rows,
    label_prefix,
    number,
)
from .protocol import ApiRequest, DecodeError

PATH = "/api/v2/cases/aggregate"

# The label of a group: named after the group_by fields joined with _ (see above).
GROUP_LABEL = "<group_by fields joined with _>"
CASES = Family(
    "datadog_cases",
    "Cases in the group (Datadog Case Management aggregate, first number of the group's value).",
    labels=("query", ACCOUNT_IF_CONFIGURED, GROUP_LABEL),
)
ALL_GROUPS = Family(
    "datadog_cases_all_groups",
    "Cases matching the query filter over all groups (Datadog Case Management aggregate total).",
    labels=("query", ACCOUNT_IF_CONFIGURED),
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


def decode_answer(body: bytes) -> _Attributes:
    return decode(_decoder, body, "cases").data.attributes


def _count(group: _Group) -> Number | None:
    """The group's count; None when it is a number Prometheus cannot read."""
    try:
        count = number(group.value[0], "unexpected cases answer: value")
    except UnreadableNumber:
        return None
    if count is None:
        raise DecodeError("unexpected cases answer: value: Expected `int | float`, got `null`")
    return count


def render_answer(
    attributes: _Attributes,
    query_name: str,
    label_name: str,
    account: str | None = None,
    max_series: int = DEFAULT_MAX_SERIES,
) -> Rendered:
    """Render one answer; the total is always kept, groups as :func:`keep_rows` says.

    A count Prometheus cannot read costs its own sample (the group then takes no series) and
    is counted in ``invalid_values``, over the groups kept.
    """
    invalid = 0
    try:
        total = number(attributes.total, "unexpected cases answer: total")
    except UnreadableNumber:
        total, invalid = None, 1
    prefix = "{" + label_prefix(query_name, account)
    # An empty value list is a group without a count: unknown, so no sample.
    groups = [group for group in attributes.groups if group.value]
    # Each group's count, read once, when keep_rows first asks about the group.
    counts: dict[int, Number | None] = {}

    def count_of(index: int) -> Number | None:
        if index not in counts:
            counts[index] = _count(groups[index])
        return counts[index]

    has_total = total is not None
    kept = keep_rows(
        [group.group for group in groups],
        lambda index: 0 if count_of(index) is None else 1,
        max_series - has_total,
        most_per_row=1,
    )
    lines: list[str] = []
    for index in kept.indexes:
        count = count_of(index)
        if count is None:
            invalid += 1
            continue
        labels = f'{prefix},{label_name}="{escape_label_value(groups[index].group)}"}} '
        lines.append(f"{CASES.name}{labels}{format_value(count)}\n")
    families = []
    if lines:
        families.append(RenderedFamily(CASES, "".join(lines).encode()))
    if total is not None:
        text = f"{ALL_GROUPS.name}{prefix}}} {format_value(total)}\n"
        families.append(RenderedFamily(ALL_GROUPS, text.encode()))
    series = len(lines) + has_total
    return Rendered(
        families=tuple(families),
        series=series,
        dropped_rows=kept.dropped,
        invalid_values=invalid,
        rows=len(attributes.groups),
    )


def unresolved_groups(fields: list[str], groups: list[str]) -> tuple[tuple[str, bool], ...]:
    """Each group_by field with True when the answer's groups never resolved it.

    A field Datadog does not know answers one ``N/A`` group holding every case. With several
    fields the group string's shape is undocumented (see the module docstring), so a field
    is judged by its position only when every group splits on ``,`` into one part per field
    (the ``OPEN,N/A`` shape); otherwise only an answer whose groups are all ``N/A`` marks
    every field. No groups: nothing to judge by (the query is reported empty instead).
    """
    if not groups:
        return ()
    if len(fields) > 1:
        parts = [group.split(",") for group in groups]
        if all(len(split) == len(fields) for split in parts):
            return tuple(
                (field, all(split[position] == NOT_AVAILABLE for split in parts))
                for position, field in enumerate(fields)
            )
    unknown = all(group == NOT_AVAILABLE for group in groups)
    return tuple((field, unknown) for field in fields)


@dataclass(frozen=True)
class CasesJob(PolledJob[CasesQuery]):
    """A configured Case Management query, ready to poll."""

    @property
    def label_names(self) -> list[str]:
        return [group_label_name(self.settings.group_by)]

    def request(self, now: float) -> ApiRequest:
        return ApiRequest(self.endpoint, "POST", PATH, json_body=request_body(self.settings))

    def decode(self, body: bytes) -> _Attributes:
        with decoding("cases"):
            return decode_answer(body)

    def render(self, answer: _Attributes) -> Rendered:
        with decoding("cases"):
            rendered = render_answer(
                answer,
                self.name,
                group_label_name(self.settings.group_by),
                self.account_label_value,
                self.settings.max_series,
            )
            unresolved = unresolved_groups(
                self.settings.group_by, [group.group for group in answer.groups]
            )
            return replace(rendered, group_by_unresolved=unresolved)
