"""CNM aggregated connections: ``GET /api/v2/network/connections/aggregate``.

A poll of query ``svc_to_svc`` grouped by ``client_service, server_service`` renders, per row:

    datadog_cnm_tcp_retransmits{query="svc_to_svc",client_service="web",server_service="db"} 42
    datadog_cnm_tcp_rtt_seconds{query="svc_to_svc",client_service="web",server_service="db"} 0.0012

A metric missing from a row yields no sample (absent is unknown, not zero), and so does a
number beyond float64's range, which Prometheus could not read: it is counted in
``Rendered.invalid_values`` instead.

The documented exception to how collectors are written: to render 7,500-row answers cheaply,
values stay the JSON text Datadog sent until rendering checks them column by column (so
``render`` may raise DecodeError too), label text is cached from one poll to the next, and
families are built column by column in C-level list operations rather than row by row. Which
rows are rendered is decided by the shared :func:`~exporter.collectors.helpers.keep_rows`, as
everywhere: a row's series there are its fields present (a value later found unreadable
included), and ``invalid_values`` counts what the rows kept could not give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from operator import attrgetter, is_not, truediv
from typing import Any, cast

import msgspec
from msgspec.structs import astuple

from ..config.schema import ConnectionsQuery
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
from .protocol import ApiRequest, DecodeError

PATH = "/api/v2/network/connections/aggregate"


# Values are kept as the JSON text Datadog sent (``msgspec.Raw``): a JSON number without an
# exponent is already valid exposition text, so most samples are copied, never parsed and
# re-formatted. Rendering checks that they are numbers Prometheus can read (see _value_texts).
# An absent field keeps the shared empty _ABSENT (JSON null arrives as the text ``null``).
_ABSENT = msgspec.Raw()


class _Attributes(msgspec.Struct, gc=False):
    group_bys: msgspec.Raw = _ABSENT  # decoded per distinct value, see _LabelCache
    bytes_sent_by_client: msgspec.Raw = _ABSENT
    bytes_sent_by_server: msgspec.Raw = _ABSENT
    packets_sent_by_client: msgspec.Raw = _ABSENT
    packets_sent_by_server: msgspec.Raw = _ABSENT
    rtt_micro_seconds: Number | None = None  # scaled to seconds, so decoded
    tcp_retransmits: msgspec.Raw = _ABSENT
    tcp_resets: msgspec.Raw = _ABSENT
    tcp_rto_count: msgspec.Raw = _ABSENT
    tcp_timeouts: msgspec.Raw = _ABSENT
    tcp_refusals: msgspec.Raw = _ABSENT
    tcp_established_connections: msgspec.Raw = _ABSENT
    tcp_closed_connections: msgspec.Raw = _ABSENT
    tcp_delivered_ce: msgspec.Raw = _ABSENT
    tcp_probe0_count: msgspec.Raw = _ABSENT
    tcp_rcv_ooo_pack: msgspec.Raw = _ABSENT
    tcp_recovery_count: msgspec.Raw = _ABSENT
    tcp_reord_seen: msgspec.Raw = _ABSENT


class _Row(msgspec.Struct, gc=False):
    attributes: _Attributes | None = None


class _Response(msgspec.Struct, gc=False):
    data: list[_Row]


class _RawRttAttributes(_Attributes, gc=False):
    """The attributes with the round-trip time kept as text too, for the rare answer whose
    round-trip time is beyond float64 (msgspec then rejects the whole answer as typed above):
    decoded this way, that value costs only its own sample (see _rtt_texts)."""

    rtt_micro_seconds: msgspec.Raw = _ABSENT  # type: ignore[assignment]


class _RawRttRow(msgspec.Struct, gc=False):
    attributes: _RawRttAttributes | None = None


class _RawRttResponse(msgspec.Struct, gc=False):
    data: list[_RawRttRow]


_decoder = msgspec.json.Decoder(_Response)
_raw_rtt_decoder = msgspec.json.Decoder(_RawRttResponse)
_GROUP_BYS = attrgetter("group_bys")
_group_bys_decoder = msgspec.json.Decoder(dict[str, list[str]] | None)
# Maps a column of JSON values joined by "\n" so that one translation (in C) answers whether
# they are all numbers without exponent: digits become "0", sign, point and newline stay,
# anything else becomes "x".
_PLAIN_NUMBER_TABLE = bytes(
    ord("0") if chr(byte).isdigit() and byte < 128 else byte if byte in b"-.\n" else ord("x")
    for byte in range(256)
)
# A number with at most 308 digits before the point is inside float64's range (which ends
# near 1.8e308), so Prometheus reads it. A run of 32 digits or more (never in a real answer:
# counters stay far below 1e31) takes the slow path, which checks the value itself; the
# shorter needle is the one CPython finds fastest.
_LONG_DIGITS = b"0" * 32

# (Datadog attribute, family). Order is the order families appear on /metrics.
FIELDS: tuple[tuple[str, Family], ...] = tuple(
    (
        attribute,
        Family(
            name,
            f"{text} Datadog CNM field {attribute}.",
            labels=QUERY_LABELS,
            # The round-trip time is the one average; every other field counts events.
            value=Value.WINDOW_AVERAGE if attribute == "rtt_micro_seconds" else Value.WINDOW_TOTAL,
        ),
    )
    for attribute, name, text in (
        (
            "bytes_sent_by_client",
            "datadog_cnm_client_sent_bytes",
            "Bytes sent by the client over the query window.",
        ),
        (
            "bytes_sent_by_server",
            "datadog_cnm_server_sent_bytes",
            "Bytes sent by the server over the query window.",
        ),
        (
            "packets_sent_by_client",
            "datadog_cnm_client_sent_packets",
            "Packets sent by the client over the query window.",
        ),
        (
            "packets_sent_by_server",
            "datadog_cnm_server_sent_packets",
            "Packets sent by the server over the query window.",
        ),
        (
            "rtt_micro_seconds",
            "datadog_cnm_tcp_rtt_seconds",
            "Smoothed TCP round-trip time averaged over the query window, in seconds.",
        ),
        (
            "tcp_retransmits",
            "datadog_cnm_tcp_retransmits",
            "TCP retransmits over the query window.",
        ),
        ("tcp_resets", "datadog_cnm_tcp_resets", "TCP resets over the query window."),
        (
            "tcp_rto_count",
            "datadog_cnm_tcp_retransmission_timeouts",
            "TCP retransmission timeouts (RTO) over the query window.",
        ),
        (
            "tcp_timeouts",
            "datadog_cnm_tcp_timeouts",
            "TCP connection timeouts over the query window.",
        ),
        (
            "tcp_refusals",
            "datadog_cnm_tcp_refusals",
            "TCP connections refused by the server over the query window.",
        ),
        (
            "tcp_established_connections",
            "datadog_cnm_tcp_established_connections",
            "TCP connections established (Datadog documents it as connections per second "
            "from the client).",
        ),
        (
            "tcp_closed_connections",
            "datadog_cnm_tcp_closed_connections",
            "TCP connections closed (Datadog documents it as connections per second "
            "from the client).",
        ),
        (
            "tcp_delivered_ce",
            "datadog_cnm_tcp_delivered_ce_segments",
            "TCP segments delivered with ECN congestion-experienced marks over the query window.",
        ),
        (
            "tcp_probe0_count",
            "datadog_cnm_tcp_zero_window_probes",
            "TCP zero-window probes over the query window.",
        ),
        (
            "tcp_rcv_ooo_pack",
            "datadog_cnm_tcp_out_of_order_packets",
            "TCP packets received out of order over the query window.",
        ),
        (
            "tcp_recovery_count",
            "datadog_cnm_tcp_fast_recoveries",
            "TCP fast recoveries over the query window.",
        ),
        (
            "tcp_reord_seen",
            "datadog_cnm_tcp_reorderings",
            "TCP reorderings seen over the query window.",
        ),
    )
)
FAMILIES: tuple[Family, ...] = tuple(family for _, family in FIELDS)
_RTT_ATTRIBUTE = "rtt_micro_seconds"


@dataclass
class _LabelCache:
    """Label text per distinct ``group_bys`` JSON, kept from one poll to the next.

    Successive polls of a query mostly return the same groups, so decoding and escaping
    them is done once per group rather than once per poll. Only groups seen in the latest
    poll are kept, which bounds the cache by the query's row limit.
    """

    prefix: str
    fields: list[str]
    names: list[str]
    entries: dict[bytes, bytes] = field(default_factory=dict)
    # The group_by fields each distinct ``group_bys`` resolves (see helpers.resolved_in).
    resolved: dict[bytes, frozenset[str]] = field(default_factory=dict)

    def labels_of(self, rows: list[_Attributes]) -> list[bytes]:
        """``{query="q",a="x"} `` for each row, in order (C-level maps when all are known)."""
        keys = list(map(bytes, map(_GROUP_BYS, rows)))
        texts: list[bytes | None] = list(map(self.entries.get, keys))
        if None in texts:
            for index, (key, text) in enumerate(zip(keys, texts, strict=True)):
                if text is None:
                    texts[index] = self._render(key)
        labels = cast(list[bytes], texts)
        self.entries = dict(zip(keys, labels, strict=True))
        self.resolved = {key: self.resolved[key] for key in self.entries}
        return labels

    def resolved_fields(self) -> set[str]:
        """The group_by fields some row of the latest answer resolved."""
        return set().union(*self.resolved.values())

    def _render(self, key: bytes) -> bytes:
        try:
            group_bys = _group_bys_decoder.decode(key or b"null")
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
            # The raw text is valid JSON, but may nest deeper than the recursion limit or
            # hold strings that are not UTF-8 (only decoding to str checks that).
            raise DecodeError(f"unexpected connections answer: group_bys: {exc}") from None
        self.resolved[key] = frozenset(resolved_in(group_bys, self.fields))
        return (self.prefix + group_labels(group_bys, self.fields, self.names) + "} ").encode()


def decode_rows(body: bytes) -> list[_Attributes]:
    """The attributes of every row (rows without attributes carry nothing to export)."""
    response: _Response | _RawRttResponse
    try:
        response = _decoder.decode(body)
    except msgspec.ValidationError:
        # Most likely a round-trip time beyond float64 ("Number out of range"). Any other
        # mistake fails this second decoding too, and is reported from there.
        response = decode(_raw_rtt_decoder, body, "connections")
    except (msgspec.DecodeError, RecursionError) as exc:
        raise DecodeError(f"unexpected connections answer: {exc}") from None
    return [row.attributes for row in response.data if row.attributes is not None]


def _value_texts(
    labels: Sequence[bytes], values: Sequence[msgspec.Raw], attribute: str
) -> tuple[Sequence[bytes], Sequence[msgspec.Raw | bytes], int]:
    """The samples' labels and values as exposition text, and how many were left out.

    The fast path checks a whole column at once in C: a JSON value made only of digits,
    ``-`` and ``.`` can only be a number without exponent, which the text format accepts
    as it is unless it is too long for float64. Anything else (exponents, long numbers,
    null, strings, booleans) takes the slow path, where null means unknown and yields no
    sample, a number beyond float64 is left out and counted, and a non-number is a
    DecodeError.
    """
    mapped = b"\n".join(values).translate(_PLAIN_NUMBER_TABLE)
    if b"x" not in mapped and _LONG_DIGITS not in mapped:
        return labels, values, 0
    numbers, invalid = _numbers(values, attribute)
    kept = [
        row_labels for row_labels, value in zip(labels, numbers, strict=True) if value is not None
    ]
    texts = [format_value(value).encode() for value in numbers if value is not None]
    return kept, texts, invalid


def _numbers(
    values: Sequence[msgspec.Raw | Number | None], attribute: str
) -> tuple[list[Number | None], int]:
    """Each value decoded, None where it is null or beyond float64; and how many were beyond."""
    what = f"unexpected connections answer: {attribute}"
    numbers: list[Number | None] = []
    invalid = 0
    for raw in values:
        try:
            numbers.append(number(raw, what))
        except UnreadableNumber:
            numbers.append(None)
            invalid += 1
    return numbers, invalid


def _rtt_texts(
    labels: Sequence[bytes], microseconds: Sequence[Number | msgspec.Raw | None]
) -> tuple[Sequence[bytes], Sequence[bytes], int]:
    """The round-trip times present, in seconds, as exposition text; and how many were left out.

    Normally the values are numbers, converted a column at a time in C. They are text when
    the answer held one beyond float64 (see _RawRttAttributes), and a JSON integer of any
    size decodes to a Python int that overflows float division: then they are decoded and
    checked one by one.
    """
    invalid = 0
    present = list(map(is_not, microseconds, repeat(None)))  # 0 is a value: test identity
    try:
        seconds = list(map(truediv, compress(microseconds, present), repeat(1e6)))
    except (TypeError, OverflowError):
        numbers, invalid = _numbers(microseconds, _RTT_ATTRIBUTE)
        present = list(map(is_not, numbers, repeat(None)))
        seconds = list(map(truediv, compress(numbers, present), repeat(1e6)))
    # Finite floats divided by 1e6 stay finite, so repr() is the exposition spelling; one
    # repr of the whole list formats every float in C, and ", " never occurs inside a repr.
    texts = repr(seconds)[1:-1].encode().split(b", ") if seconds else []
    return list(compress(labels, present)), texts, invalid


def _family_text(
    name: bytes, labels: Sequence[bytes], values: Sequence[msgspec.Raw | bytes]
) -> bytes:
    """``name{labels} value\n`` for each sample, joined in C without a string per line."""
    parts: list[bytes | msgspec.Raw] = [b"\n" + name] * (3 * len(labels) + 1)
    parts[0] = name
    parts[1::3] = labels
    parts[2::3] = values
    parts[-1] = b"\n"
    return b"".join(parts)


def render_rows(rows: list[_Attributes], labels: list[bytes], max_series: int) -> Rendered:
    """Render decoded rows (with their label text) into one chunk per family.

    Rows are turned into columns so each family is a handful of C-level list operations;
    no Python object is made per sample. Which rows are kept is :func:`keep_rows`' rule.
    """
    value_rows = list(map(astuple, rows))
    kept = keep_rows(
        labels,
        lambda index: _present_fields(value_rows[index]),
        max_series,
        most_per_row=len(FIELDS),
    )
    if not kept.indexes:
        return Rendered(families=(), series=0, dropped_rows=kept.dropped)
    kept_labels = labels
    if not kept.everything:
        kept_labels = [labels[index] for index in kept.indexes]
        value_rows = [value_rows[index] for index in kept.indexes]
    columns: list[Any] = list(zip(*value_rows, strict=True))[1:]  # column 0 is group_bys
    families = []
    series = 0
    invalid = 0
    for (attribute, family), column in zip(FIELDS, columns, strict=True):
        family_labels: Sequence[bytes]
        texts: Sequence[msgspec.Raw | bytes]
        if attribute == _RTT_ATTRIBUTE:
            family_labels, texts, left_out = _rtt_texts(kept_labels, column)
        else:
            # An absent field is the empty Raw, the only falsy one: compress() and filter()
            # test that in C, without a Python call per value.
            if all(column):
                family_labels, values = kept_labels, column
            else:
                family_labels = list(compress(kept_labels, column))
                values = list(filter(None, column))
            family_labels, texts, left_out = _value_texts(family_labels, values, attribute)
        invalid += left_out
        if not texts:
            continue
        series += len(family_labels)
        name = family.name.encode()
        families.append(RenderedFamily(family, _family_text(name, family_labels, texts)))
    return Rendered(
        families=tuple(families),
        series=series,
        dropped_rows=kept.dropped,
        invalid_values=invalid,
    )


def _present_fields(values: tuple[object, ...]) -> int:
    """The series a row can have: one per field present (``values[0]`` is its group_bys).

    An absent field is ``_ABSENT``, or ``None`` for the round-trip time, which is decoded as a
    number (or as raw text when the answer held one beyond float64, where absent is _ABSENT).
    """
    return sum(1 for value in values[1:] if value is not _ABSENT and value is not None)


@dataclass(frozen=True)
class ConnectionsJob(PolledJob[ConnectionsQuery]):
    """A configured connections query, ready to poll."""

    _labels: _LabelCache = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cache = _LabelCache(
            "{" + label_prefix(self.settings.name, self.account_label_value),
            self.settings.group_by,
            self.label_names,
        )
        object.__setattr__(self, "_labels", cache)

    @property
    def label_names(self) -> list[str]:
        return label_names_for(self.settings.group_by)

    def request(self, now: float) -> ApiRequest:
        return windowed_request(self.endpoint, PATH, self.settings, now)

    def decode(self, body: bytes) -> list[_Attributes]:
        with decoding("connections"):
            return decode_rows(body)

    def render(self, answer: list[_Attributes]) -> Rendered:
        with decoding("connections"):
            labels = self._labels.labels_of(answer)
            rendered = render_rows(answer, labels, self.settings.max_series)
            unresolved = unresolved_fields(
                self.settings.group_by, self._labels.resolved_fields(), len(answer)
            )
            return replace(rendered, rows=len(answer), group_by_unresolved=unresolved)
