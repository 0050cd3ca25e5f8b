"""Network Health Insights: ``GET /api/v2/network-health-insights`` (a preview endpoint).

A poll of query ``nhi`` renders, per category, failure type and service pair, and per
certificate's domain and service pair:

    datadog_network_health_failure_ratio{query="nhi",category="dns",failure_type="nxdomain",client_service="web",server_service="coredns"} 0.125
    datadog_network_health_failures{query="nhi",category="dns",failure_type="nxdomain",client_service="web",server_service="coredns"} 15
    datadog_network_health_requests{query="nhi",category="dns",failure_type="nxdomain",client_service="web",server_service="coredns"} 120
    datadog_network_health_insight_info{query="nhi",category="dns",failure_type="nxdomain",client_service="web",server_service="coredns",dns_query="db.internal",dns_server="10.2.0.1"} 1
    datadog_network_health_certificate_expiry_seconds{query="nhi",domain="shop.example",client_service="web",server_service="lb"} 864000
    datadog_network_health_certificate_lifetime_used_ratio{query="nhi",domain="shop.example",client_service="web",server_service="lb"} 0.9
    datadog_network_health_certificate_info{query="nhi",domain="shop.example",client_service="web",server_service="lb",certificate_id="arn:...",account_id="123",client_region="us-east-1",server_region="us-east-1",loadbalancer_id="arn:..."} 1

How insights become series (no recorded answer exists: the shape is the documented one):

- Insights of one category, failure type and service pair are one set: their failures,
  requests and traffic are summed, and the failure ratio is the worst (highest) of theirs.
  What tells them apart (the DNS query and server) is on the info series.
- Certificates of one domain and service pair are one set: the soonest expiry and the most
  lifetime used are exported; the certificate's id, account, regions and load balancer are
  on ``datadog_network_health_certificate_info``. ``certificate_id_label: true`` puts the
  id on the value series as well (one set per certificate).
- A label field Datadog leaves out is written empty (Prometheus reads it as absent).
- Tolerance: every attribute is kept as JSON text and read one by one. A number of the
  wrong type or beyond float64 costs its own sample; a label of the wrong type costs its
  insight's samples; an insight that is not an object costs itself. Each counts in
  ``Rendered.invalid_values``; the rest of the answer is rendered. Only a body whose
  ``data`` is not a list of something fails the poll.
- ``categories`` leaves out the insights of other categories (the endpoint has no filter);
  ``Rendered.rows`` counts the insights kept by it. An empty answer is normal here: no
  insight means Datadog found nothing wrong.
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from ..config.schema import DEFAULT_MAX_SERIES, NetworkHealthQuery
from ..exposition import (
    ACCOUNT_IF_CONFIGURED,
    Family,
    Rendered,
    RenderedFamily,
    Value,
    escape_label_value,
    format_value,
)
from .helpers import (
    Number,
    PolledJob,
    UnreadableNumber,
    decode,
    decoding,
    keep_rows,
    label_prefix,
    number,
    window_params,
)
from .protocol import ApiRequest, DecodeError

PATH = "/api/v2/network-health-insights"
SECONDS_PER_DAY = 86400
# A stand-in in Family.labels: present only with ``certificate_id_label: true``.
CERTIFICATE_ID_IF_ASKED = "<certificate_id, with certificate_id_label: true only>"

_QUERY = ("query", ACCOUNT_IF_CONFIGURED)
# Datadog attribute -> label, for the failure sets and the certificate sets.
_FAILURE_KEYS = (
    ("type", "category"),
    ("failure_type", "failure_type"),
    ("client_service", "client_service"),
    ("server_service", "server_service"),
)
_INSIGHT_EXTRA = (("dns_query", "dns_query"), ("dns_server", "dns_server"))
_CERTIFICATE_KEYS = (
    ("domain_name", "domain"),
    ("client_service", "client_service"),
    ("server_service", "server_service"),
)
_CERTIFICATE_EXTRA = (
    ("certificate_id", "certificate_id"),
    ("account_id", "account_id"),
    ("client_region", "client_region"),
    ("server_region", "server_region"),
    ("loadbalancer_id", "loadbalancer_id"),
)
_FAILURE_LABELS = (*_QUERY, *(label for _, label in _FAILURE_KEYS))
_CERTIFICATE_LABELS = (
    *_QUERY,
    *(label for _, label in _CERTIFICATE_KEYS),
    CERTIFICATE_ID_IF_ASKED,
)

_NOTE = (
    "Network Health Insights is a preview endpoint; the shape is the documented one (no "
    "recorded answer exists)."
)
FAILURE_RATIO = Family(
    "datadog_network_health_failure_ratio",
    "Share of requests that failed (0-1), the highest of the insights of this category, "
    "failure type and service pair. Datadog field failure_rate (percent) / 100.",
    labels=_FAILURE_LABELS,
    value=Value.WINDOW_AVERAGE,
    note=_NOTE,
)
FAILURES = Family(
    "datadog_network_health_failures",
    "Failed events over the query window, summed over the insights of this category, "
    "failure type and service pair. Datadog field failure_magnitude.",
    labels=_FAILURE_LABELS,
    value=Value.WINDOW_TOTAL,
)
REQUESTS = Family(
    "datadog_network_health_requests",
    "Requests over the query window, summed over the insights of this category, failure "
    "type and service pair. Datadog field total_requests.",
    labels=_FAILURE_LABELS,
    value=Value.WINDOW_TOTAL,
)
READ_BYTES = Family(
    "datadog_network_health_read_bytes",
    "Bytes read between the two services over the query window, summed over the insights "
    "of the set. Datadog field traffic_volume.bytes_read.",
    labels=_FAILURE_LABELS,
    value=Value.WINDOW_TOTAL,
)
WRITTEN_BYTES = Family(
    "datadog_network_health_written_bytes",
    "Bytes written between the two services over the query window, summed over the "
    "insights of the set. Datadog field traffic_volume.bytes_written.",
    labels=_FAILURE_LABELS,
    value=Value.WINDOW_TOTAL,
)
TRAFFIC_BYTES = Family(
    "datadog_network_health_traffic_bytes",
    "Bytes between the two services over the query window, summed over the insights of "
    "the set. Datadog field traffic_volume.total_traffic.",
    labels=_FAILURE_LABELS,
    value=Value.WINDOW_TOTAL,
)
INSIGHT_INFO = Family(
    "datadog_network_health_insight_info",
    "An insight of this category, failure type and service pair; always 1. Labels: Datadog "
    "fields dns_query and dns_server (empty when the insight has none).",
    labels=(*_FAILURE_LABELS, *(label for _, label in _INSIGHT_EXTRA)),
    value=Value.INFO,
)
CERTIFICATE_EXPIRY = Family(
    "datadog_network_health_certificate_expiry_seconds",
    "Time until the certificate expires (negative: expired), the soonest of the domain and "
    "service pair. Datadog field days_until_expiration x 86400 (whole days).",
    labels=_CERTIFICATE_LABELS,
    value=Value.CURRENT,
)
CERTIFICATE_LIFETIME = Family(
    "datadog_network_health_certificate_lifetime_used_ratio",
    "Share of the certificate's validity period elapsed (0-1), the most of the domain and "
    "service pair. Datadog field certificate_lifetime_percent / 100.",
    labels=_CERTIFICATE_LABELS,
    value=Value.CURRENT,
)
CERTIFICATE_INFO = Family(
    "datadog_network_health_certificate_info",
    "A certificate Datadog reports for the domain and service pair; always 1. Labels: "
    "Datadog fields certificate_id, account_id, client_region, server_region, "
    "loadbalancer_id (empty when absent).",
    labels=(
        *_QUERY,
        *(label for _, label in _CERTIFICATE_KEYS),
        *(label for _, label in _CERTIFICATE_EXTRA),
    ),
    value=Value.INFO,
)
FAILURE_FAMILIES = (FAILURE_RATIO, FAILURES, REQUESTS, READ_BYTES, WRITTEN_BYTES, TRAFFIC_BYTES)
FAMILIES: tuple[Family, ...] = (
    *FAILURE_FAMILIES,
    INSIGHT_INFO,
    CERTIFICATE_EXPIRY,
    CERTIFICATE_LIFETIME,
    CERTIFICATE_INFO,
)

_ABSENT = msgspec.Raw()


class _Traffic(msgspec.Struct, gc=False):
    bytes_read: msgspec.Raw = _ABSENT
    bytes_written: msgspec.Raw = _ABSENT
    total_traffic: msgspec.Raw = _ABSENT


class _Attributes(msgspec.Struct, gc=False):
    # Every attribute stays JSON text until read: a wrong type costs only what it feeds.
    type: msgspec.Raw = _ABSENT
    failure_type: msgspec.Raw = _ABSENT
    client_service: msgspec.Raw = _ABSENT
    server_service: msgspec.Raw = _ABSENT
    failure_magnitude: msgspec.Raw = _ABSENT
    failure_rate: msgspec.Raw = _ABSENT
    total_requests: msgspec.Raw = _ABSENT
    traffic_volume: msgspec.Raw = _ABSENT
    dns_query: msgspec.Raw = _ABSENT
    dns_server: msgspec.Raw = _ABSENT
    domain_name: msgspec.Raw = _ABSENT
    certificate_id: msgspec.Raw = _ABSENT
    days_until_expiration: msgspec.Raw = _ABSENT
    certificate_lifetime_percent: msgspec.Raw = _ABSENT
    account_id: msgspec.Raw = _ABSENT
    client_region: msgspec.Raw = _ABSENT
    server_region: msgspec.Raw = _ABSENT
    loadbalancer_id: msgspec.Raw = _ABSENT


class _Row(msgspec.Struct, gc=False):
    attributes: _Attributes | None = None


class _Response(msgspec.Struct, gc=False):
    # Each insight decoded on its own, so one of a wrong shape costs only itself.
    data: list[msgspec.Raw]


_decoder = msgspec.json.Decoder(_Response)
_row_decoder = msgspec.json.Decoder(_Row)
_traffic_decoder = msgspec.json.Decoder(_Traffic | None)
_text_decoder = msgspec.json.Decoder(str | None)


class _WrongType(Exception):
    """An attribute of a type the documentation does not give it."""


def _text(raw: msgspec.Raw) -> str | None:
    if not raw:
        return None
    try:
        return _text_decoder.decode(raw)
    except msgspec.ValidationError:
        raise _WrongType from None


def _value(raw: msgspec.Raw, what: str) -> Number | None:
    try:
        return number(raw, what)
    except (UnreadableNumber, DecodeError):
        raise _WrongType from None


@dataclass(slots=True)
class _Set:
    """The samples of one label set: family -> value, and the values that could not be read."""

    labels: str
    certificate: bool  # a certificate's set (else a failure set)
    values: dict[Family, Number] = field(default_factory=dict)
    unreadable: set[Family] = field(default_factory=set)
    info: dict[str, None] = field(default_factory=dict)  # info label texts, in answer order

    def add(
        self,
        family: Family,
        raw: msgspec.Raw,
        combine: Callable[[Number, Number], Number],
        scale: float = 1.0,
    ) -> None:
        if not raw:
            return
        try:
            value = _value(raw, family.name)
        except _WrongType:
            self.unreadable.add(family)
            return
        if value is None:
            return
        scaled: Number = value * scale if scale != 1.0 else value
        known = self.values.get(family)
        self.values[family] = scaled if known is None else combine(known, scaled)

    @property
    def series(self) -> int:
        return len(self._served()) + len(self.info)

    def _served(self) -> dict[Family, Number]:
        # A set one of whose insights sent an unreadable value gives no sample of it: a sum
        # or extreme without that insight would be a wrong number, not a smaller one.
        return {f: v for f, v in self.values.items() if f not in self.unreadable}

    def lines(self) -> list[tuple[Family, str]]:
        return [
            (f, f"{f.name}{{{self.labels}}} {format_value(v)}\n") for f, v in self._served().items()
        ]


def _add(a: Number, b: Number) -> Number:
    return a + b


def _labels(prefix: str, pairs: list[tuple[str, str | None]]) -> str:
    return prefix + "".join(f',{name}="{escape_label_value(value or "")}"' for name, value in pairs)


def _read_labels(
    attrs: _Attributes, keys: tuple[tuple[str, str], ...]
) -> list[tuple[str, str | None]]:
    return [(label, _text(getattr(attrs, attribute))) for attribute, label in keys]


def decode_rows(body: bytes) -> list[msgspec.Raw]:
    return decode(_decoder, body, "network_health").data


def _set_of(sets: dict[str, _Set], labels: str, certificate: bool) -> _Set:
    found = sets.get(labels)
    if found is None:
        found = sets[labels] = _Set(labels, certificate)
    return found


def _add_traffic(failures: _Set, raw: msgspec.Raw) -> None:
    """The bytes of an insight's ``traffic_volume`` object, when it has one."""
    if not raw:
        return
    try:
        traffic = _traffic_decoder.decode(raw)
    except msgspec.ValidationError:
        failures.unreadable |= {READ_BYTES, WRITTEN_BYTES, TRAFFIC_BYTES}
        return
    if traffic is not None:
        failures.add(READ_BYTES, traffic.bytes_read, _add)
        failures.add(WRITTEN_BYTES, traffic.bytes_written, _add)
        failures.add(TRAFFIC_BYTES, traffic.total_traffic, _add)


def _add_insight(
    sets: dict[str, _Set],
    prefix: str,
    attrs: _Attributes,
    category: str | None,
    certificate_id_label: bool,
) -> None:
    """Add one insight's values to the sets of its labels; _WrongType (and nothing added)
    when one of its labels is not a string."""
    failure_labels = [("category", category), *_read_labels(attrs, _FAILURE_KEYS[1:])]
    insight_extra = _read_labels(attrs, _INSIGHT_EXTRA)
    certificate_labels = _read_labels(attrs, _CERTIFICATE_KEYS)
    certificate_extra = _read_labels(attrs, _CERTIFICATE_EXTRA)
    failures = _set_of(sets, _labels(prefix, failure_labels), False)
    failures.info.setdefault(
        f"{INSIGHT_INFO.name}{{{_labels(failures.labels, insight_extra)}}} 1\n"
    )
    failures.add(FAILURE_RATIO, attrs.failure_rate, max, 0.01)
    failures.add(FAILURES, attrs.failure_magnitude, _add)
    failures.add(REQUESTS, attrs.total_requests, _add)
    _add_traffic(failures, attrs.traffic_volume)
    # Certificates are documented for the tls-cert category only.
    if category == "tls-cert":
        id_pair = certificate_extra[:1] if certificate_id_label else []
        certificate = _set_of(sets, _labels(prefix, certificate_labels + id_pair), True)
        certificate.info.setdefault(
            f"{CERTIFICATE_INFO.name}{{"
            f"{_labels(_labels(prefix, certificate_labels), certificate_extra)}}} 1\n"
        )
        certificate.add(CERTIFICATE_EXPIRY, attrs.days_until_expiration, min, SECONDS_PER_DAY)
        certificate.add(CERTIFICATE_LIFETIME, attrs.certificate_lifetime_percent, max, 0.01)


def _rendered(sets: dict[str, _Set], max_series: int, invalid: int, insights: int) -> Rendered:
    """The families of the label sets that fit in ``max_series``, in answer order."""
    ordered = list(sets.values())
    kept = keep_rows([s.labels for s in ordered], lambda index: ordered[index].series, max_series)
    lines: dict[Family, list[str]] = {family: [] for family in FAMILIES}
    series = 0
    for index in kept.indexes:
        item = ordered[index]
        invalid += len(item.unreadable)
        for family, line in item.lines():
            lines[family].append(line)
        info = CERTIFICATE_INFO if item.certificate else INSIGHT_INFO
        lines[info].extend(item.info)
        series += item.series
    return Rendered(
        families=tuple(
            RenderedFamily(family, "".join(family_lines).encode())
            for family, family_lines in lines.items()
            if family_lines
        ),
        series=series,
        dropped_rows=kept.dropped,
        invalid_values=invalid,
        rows=insights,
    )


def render_rows(
    rows: list[msgspec.Raw],
    query_name: str,
    *,
    categories: frozenset[str] = frozenset(),
    certificate_id_label: bool = False,
    account: str | None = None,
    max_series: int = DEFAULT_MAX_SERIES,
) -> Rendered:
    """Render the insights of one answer (see the module's docstring)."""
    prefix = label_prefix(query_name, account)
    sets: dict[str, _Set] = {}
    invalid = 0
    insights = 0
    for raw in rows:
        try:
            attrs = _row_decoder.decode(raw).attributes
        except msgspec.ValidationError:
            if not categories:
                insights += 1
            invalid += 1
            continue
        if attrs is None:
            if not categories:
                insights += 1
            continue
        try:
            category = _text(attrs.type)
        except _WrongType:
            invalid += 1
            continue
        if categories and category not in categories:
            continue
        insights += 1
        try:
            _add_insight(sets, prefix, attrs, category, certificate_id_label)
        except _WrongType:
            invalid += 1
    return _rendered(sets, max_series, invalid, insights)


@dataclass(frozen=True)
class NetworkHealthJob(PolledJob[NetworkHealthQuery]):
    """A configured Network Health Insights query, ready to poll."""

    @property
    def label_names(self) -> list[str]:
        """The labels its series carry besides ``query`` and ``account`` (for the backfill)."""
        names = [label for _, label in (*_FAILURE_KEYS, *_INSIGHT_EXTRA, *_CERTIFICATE_KEYS)]
        names += [label for _, label in _CERTIFICATE_EXTRA]
        return list(dict.fromkeys(names))

    @property
    def empty_answer_is_news(self) -> bool:
        """No insight is what a healthy network answers: nothing to warn about."""
        return False

    def request(self, now: float) -> ApiRequest:
        # The endpoint takes only from and to (Unix seconds as strings).
        return ApiRequest(self.endpoint, "GET", PATH, window_params(self.settings, now))

    def decode(self, body: bytes) -> list[msgspec.Raw]:
        with decoding("network_health"):
            return decode_rows(body)

    def render(self, answer: list[msgspec.Raw]) -> Rendered:
        with decoding("network_health"):
            return render_rows(
                answer,
                self.name,
                categories=frozenset(self.settings.categories),
                certificate_id_label=self.settings.certificate_id_label,
                account=self.account_label_value,
                max_series=self.settings.max_series,
            )
