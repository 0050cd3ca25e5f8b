"""CNM aggregated DNS: ``GET /api/v2/network/dns/aggregate``.

A poll of query ``by_query`` grouped by ``network.dns_query`` renders, per row:

    datadog_dns_requests{query="by_query",network_dns_query="db.internal"} 1200
    datadog_dns_nxdomain_responses{query="by_query",network_dns_query="db.internal"} 3

Rows carry ``group_bys`` and ``metrics`` as lists of ``{"key", "value"}`` pairs. Labels are
the configured ``group_by`` fields only (a key Datadog adds that was not asked for is ignored,
so every series of a query has the same label names); a key repeated in a row joins its values
with ``,``. A metric key this module does not know is exported as ``datadog_dns_<key>``
(sanitized, leading ``dns_`` dropped) rather than lost; a name already taken by a documented
family, or by another unknown key of the same answer, gets ``_2``, ``_3``... in key order.
A value beyond float64's range, which Prometheus could not read, yields no sample and is
counted in ``Rendered.invalid_values``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from ..config.schema import DEFAULT_MAX_SERIES, DnsQuery
from ..exposition import (
    QUERY_LABELS,
    Family,
    Rendered,
    RenderedFamily,
    Value,
    format_value,
    label_names_for,
)
from .helpers import (
    Number,
    PolledJob,
    UnreadableNumber,
    decode,
    decoding,
    group_labels,
    keep_rows,
    label_prefix,
    number,
    resolved_in,
    unresolved_fields,
    windowed_request,
)
from .protocol import ApiRequest

PATH = "/api/v2/network/dns/aggregate"
_PREFIX = "datadog_dns_"
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_LATENCY_HELP = (
    "Datadog does not document its unit or which percentile it is; exported as sent, "
    "without conversion."
)


class _Pair(msgspec.Struct, gc=False):
    key: str
    value: str


class _Metric(msgspec.Struct, gc=False):
    key: str
    # Kept as JSON text and decoded one by one, so a number beyond float64 costs only its
    # own sample (decoding it as a number would fail the whole answer).
    value: msgspec.Raw = msgspec.Raw()


class _Attributes(msgspec.Struct, gc=False):
    group_bys: list[_Pair] | None = None
    metrics: list[_Metric] | None = None


class _Row(msgspec.Struct, gc=False):
    attributes: _Attributes | None = None


class _Response(msgspec.Struct, gc=False):
    data: list[_Row]


_decoder = msgspec.json.Decoder(_Response)

# Datadog metric key -> family, in the order families appear on /metrics.
FAMILIES_BY_KEY: dict[str, Family] = {
    key: Family(
        name,
        f"{text} Datadog DNS metric {key}.",
        labels=QUERY_LABELS,
        value=Value.AS_SENT if key.endswith("_latency_percentile") else Value.WINDOW_TOTAL,
    )
    for key, name, text in (
        ("dns_total_requests", "datadog_dns_requests", "DNS requests over the query window."),
        (
            "dns_failures",
            "datadog_dns_failures",
            "DNS requests that failed (failed responses plus timeouts) over the query window.",
        ),
        (
            "dns_successful_responses",
            "datadog_dns_successful_responses",
            "Successful DNS responses over the query window.",
        ),
        (
            "dns_failed_responses",
            "datadog_dns_failed_responses",
            "DNS responses carrying an error code over the query window.",
        ),
        ("dns_timeouts", "datadog_dns_timeouts", "DNS requests that timed out over the window."),
        (
            "dns_responses.nxdomain",
            "datadog_dns_nxdomain_responses",
            "NXDOMAIN (no such name) DNS responses over the query window.",
        ),
        (
            "dns_responses.servfail",
            "datadog_dns_servfail_responses",
            "SERVFAIL DNS responses over the query window.",
        ),
        (
            "dns_responses.other",
            "datadog_dns_other_responses",
            "DNS responses with another error code over the query window.",
        ),
        (
            "dns_success_latency_percentile",
            "datadog_dns_success_latency_percentile",
            f"Latency percentile of successful DNS requests. {_LATENCY_HELP}",
        ),
        (
            "dns_failure_latency_percentile",
            "datadog_dns_failure_latency_percentile",
            f"Latency percentile of failed DNS requests. {_LATENCY_HELP}",
        ),
    )
}
FAMILIES: tuple[Family, ...] = tuple(FAMILIES_BY_KEY.values())
_KNOWN_NAMES = frozenset(family.name for family in FAMILIES)


def unknown_key_name(key: str) -> str:
    """``dns_responses.refused`` -> ``datadog_dns_responses_refused`` (before clash handling)."""
    return _PREFIX + _INVALID_NAME_CHARS.sub("_", key.removeprefix("dns_") or key)


def unknown_families(keys: set[str]) -> dict[str, Family]:
    """A family for each metric key not documented when this module was written.

    Keys are taken in sorted order so an answer's names do not depend on row order.
    """
    taken = set(_KNOWN_NAMES)
    families = {}
    for key in sorted(keys):
        base = unknown_key_name(key)
        name, counter = base, 2
        while name in taken:
            name = f"{base}_{counter}"
            counter += 1
        taken.add(name)
        families[key] = Family(
            name,
            f"Datadog DNS metric {key} (not documented when this exporter was written; "
            "exported as sent).",
            labels=QUERY_LABELS,
            value=Value.AS_SENT,
        )
    return families


def decode_rows(body: bytes) -> list[_Row]:
    return decode(_decoder, body, "dns").data


def _row_values(metrics: list[_Metric]) -> tuple[dict[str, Number], int]:
    """A row's values by key (the first one of a key that is not null), and how many values
    were numbers Prometheus cannot read (like null: a later value of the same key may stand
    in)."""
    values: dict[str, Number] = {}
    unreadable = 0
    for metric in metrics:
        try:
            value = number(metric.value, f"unexpected dns answer: {metric.key}")
        except UnreadableNumber:
            unreadable += 1
            continue
        if value is not None:
            values.setdefault(metric.key, value)
    return values, unreadable


def render_rows(
    rows: list[_Row],
    query_name: str,
    fields: list[str],
    names: list[str],
    *,
    account: str | None = None,
    max_series: int = DEFAULT_MAX_SERIES,
) -> Rendered:
    """Render decoded rows into one text chunk per family (documented families first).

    Rows without metrics carry nothing; of the others, :func:`keep_rows` picks those to
    render (the first of each label set, as many as fit in ``max_series``). Values
    Prometheus cannot read count towards ``invalid_values`` in the rows kept.
    """
    prefix = "{" + label_prefix(query_name, account)
    labels: list[str] = []
    metrics: list[list[_Metric]] = []
    resolved: set[str] = set()
    for row in rows:
        attrs = row.attributes
        if attrs is None:
            continue
        grouped: dict[str, list[str]] = {}
        for pair in attrs.group_bys or ():
            grouped.setdefault(pair.key, []).append(pair.value)
        resolved |= resolved_in(grouped, fields)
        if not attrs.metrics:
            continue
        labels.append(prefix + group_labels(grouped, fields, names) + "} ")
        metrics.append(attrs.metrics)
    # Each row's values, read once, when keep_rows first asks about the row.
    values: dict[int, tuple[dict[str, Number], int]] = {}

    def values_of(index: int) -> tuple[dict[str, Number], int]:
        if index not in values:
            values[index] = _row_values(metrics[index])
        return values[index]

    kept = keep_rows(labels, lambda index: len(values_of(index)[0]), max_series)
    lines: dict[str, list[str]] = {}
    series = 0
    invalid = 0
    for index in kept.indexes:
        present, unreadable = values_of(index)
        series += len(present)
        invalid += unreadable
        for key, value in present.items():
            lines.setdefault(key, []).append(f"{labels[index]}{format_value(value)}\n")
    families = dict(FAMILIES_BY_KEY)
    families.update(unknown_families(set(lines) - set(FAMILIES_BY_KEY)))
    rendered = [
        RenderedFamily(family, "".join(family.name + s for s in lines[key]).encode())
        for key, family in families.items()
        if key in lines
    ]
    return Rendered(
        families=tuple(rendered),
        series=series,
        dropped_rows=kept.dropped,
        invalid_values=invalid,
        rows=len(rows),
        group_by_unresolved=unresolved_fields(fields, resolved, len(rows)),
    )


@dataclass(frozen=True)
class DnsJob(PolledJob[DnsQuery]):
    """A configured DNS query, ready to poll."""

    @property
    def label_names(self) -> list[str]:
        return label_names_for(self.settings.label_fields)

    def request(self, now: float) -> ApiRequest:
        return windowed_request(self.endpoint, PATH, self.settings, now)

    def decode(self, body: bytes) -> list[_Row]:
        with decoding("dns"):
            return decode_rows(body)

    def render(self, answer: list[_Row]) -> Rendered:
        with decoding("dns"):
            return render_rows(
                answer,
                self.name,
                self.settings.label_fields,
                self.label_names,
                account=self.account_label_value,
                max_series=self.settings.max_series,
            )
