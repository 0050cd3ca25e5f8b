"""CNM aggregated connections: ``GET /api/v2/network/connections/aggregate``.

A poll of query ``svc_to_svc`` grouped by ``client_service, server_service`` renders, per row:

    datadog_cnm_tcp_retransmits{query="svc_to_svc",client_service="web",server_service="db"} 42
    datadog_cnm_tcp_rtt_seconds{query="svc_to_svc",client_service="web",server_service="db"} 0.0012

A metric missing from a row yields no sample (absent is unknown, not zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import attrgetter, is_not, truediv
from typing import Any, cast

import msgspec
from msgspec.structs import astuple

from ..config.schema import ConnectionsQuery
from ..exposition import Family, Rendered, RenderedFamily, format_value, label_names_for
from ..gcpause import gc_paused
from .base import ApiRequest, DecodeError
from .common import Number, PolledJob, group_labels, label_prefix, windowed_params

ENDPOINT = "connections"
PATH = "/api/v2/network/connections/aggregate"


# Values are kept as the JSON text Datadog sent (``msgspec.Raw``): a JSON number without an
# exponent is already valid exposition text, so most samples are copied, never parsed and
# re-formatted. Rendering checks that they are numbers (see _value_texts). An absent field
# keeps the shared empty _ABSENT (JSON null arrives as the text ``null``).
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


_decoder = msgspec.json.Decoder(_Response)
_GROUP_BYS = attrgetter("group_bys")
_group_bys_decoder = msgspec.json.Decoder(dict[str, list[str]] | None)
_number_decoder = msgspec.json.Decoder(Number | None)
# What remains of a JSON number without exponent once its digits, sign and point are removed.
_PLAIN_NUMBER_CHARS = b"0123456789-.\n"

# (Datadog attribute, family). Order is the order families appear on /metrics.
FIELDS: tuple[tuple[str, Family], ...] = tuple(
    (attribute, Family(name, f"{text} Datadog CNM field {attribute}."))
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
        return labels

    def _render(self, key: bytes) -> bytes:
        try:
            group_bys = _group_bys_decoder.decode(key or b"null")
        except msgspec.ValidationError as exc:
            raise DecodeError(f"unexpected connections answer: group_bys: {exc}") from None
        return (self.prefix + group_labels(group_bys, self.fields, self.names) + "} ").encode()


def decode_rows(body: bytes) -> list[_Attributes]:
    """The attributes of every row (rows without attributes carry nothing to export)."""
    try:
        rows = _decoder.decode(body).data
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(f"unexpected connections answer: {exc}") from None
    return [row.attributes for row in rows if row.attributes is not None]


def _value_texts(
    labels: Sequence[bytes], values: Sequence[msgspec.Raw], attribute: str
) -> tuple[Sequence[bytes], Sequence[msgspec.Raw | bytes]]:
    """The samples' labels and values as exposition text; raise DecodeError for non-numbers.

    The fast path checks a whole column at once in C: a JSON value made only of digits,
    ``-`` and ``.`` can only be a number without exponent, which the text format accepts
    as it is. Anything else (exponents, null, strings, booleans) takes the slow path, where
    null means unknown and yields no sample.
    """
    if not b"\n".join(values).translate(None, _PLAIN_NUMBER_CHARS):
        return labels, values
    kept: list[bytes] = []
    texts: list[msgspec.Raw | bytes] = []
    for row_labels, raw in zip(labels, values, strict=True):
        try:
            number = _number_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise DecodeError(f"unexpected connections answer: {attribute}: {exc}") from None
        if number is not None:
            kept.append(row_labels)
            texts.append(format_value(number).encode())
    return kept, texts


def _rtt_texts(
    labels: Sequence[bytes], microseconds: Sequence[Number | None]
) -> tuple[Sequence[bytes], Sequence[bytes]]:
    """The round-trip times present, in seconds, as exposition text."""
    present = list(map(is_not, microseconds, repeat(None)))  # 0 is a value: test identity
    seconds = list(map(truediv, compress(microseconds, present), repeat(1e6)))
    # JSON numbers are finite, so repr() is the exposition spelling; one repr of the whole
    # list formats every float in C, and ", " never occurs inside a float's repr.
    texts = repr(seconds)[1:-1].encode().split(b", ") if seconds else []
    return list(compress(labels, present)), texts


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
    no Python object is made per sample. Rows beyond ``max_series`` series are dropped, the
    first rows (Datadog's biggest) kept.
    """
    kept_labels = labels
    value_rows = list(map(astuple, rows))
    if len(set(labels)) < len(labels):
        # Two rows with the same label set would be a duplicate series: keep the first.
        first = {row_labels: index for index, row_labels in reversed(list(enumerate(labels)))}
        keep = sorted(first.values())
        kept_labels = [labels[index] for index in keep]
        value_rows = [value_rows[index] for index in keep]
    kept = _rows_within(value_rows, max_series)
    dropped = len(value_rows) - kept
    if not kept:
        return Rendered(families=(), series=0, dropped_rows=dropped)
    value_rows, kept_labels = value_rows[:kept], kept_labels[:kept]
    columns: list[Any] = list(zip(*value_rows, strict=True))[1:]  # column 0 is group_bys
    families = []
    series = 0
    for (attribute, family), column in zip(FIELDS, columns, strict=True):
        family_labels: Sequence[bytes]
        texts: Sequence[msgspec.Raw | bytes]
        if attribute == _RTT_ATTRIBUTE:
            family_labels, texts = _rtt_texts(kept_labels, column)
        else:
            # An absent field is the empty Raw, the only falsy one: compress() and filter()
            # test that in C, without a Python call per value.
            if all(column):
                family_labels, values = kept_labels, column
            else:
                family_labels = list(compress(kept_labels, column))
                values = list(filter(None, column))
            family_labels, texts = _value_texts(family_labels, values, attribute)
        if not texts:
            continue
        series += len(family_labels)
        name = family.name.encode()
        families.append(RenderedFamily(family, _family_text(name, family_labels, texts)))
    return Rendered(families=tuple(families), series=series, dropped_rows=dropped)


def _rows_within(value_rows: list[tuple[object, ...]], max_series: int) -> int:
    """How many leading rows fit in ``max_series`` series (a row has one per present field)."""
    if len(value_rows) * len(FIELDS) <= max_series:
        return len(value_rows)
    series = 0
    for index, values in enumerate(value_rows):
        series += sum(1 for value in values[1:] if value is not None and value is not _ABSENT)
        if series > max_series:
            return index
    return len(value_rows)


@dataclass(frozen=True)
class ConnectionsJob(PolledJob[ConnectionsQuery]):
    """A configured connections query, ready to poll."""

    collector: str = "connections"
    endpoint: str = ENDPOINT
    _labels: _LabelCache = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cache = _LabelCache(
            "{" + label_prefix(self.settings.name, self.series_account),
            self.settings.group_by,
            self.label_names,
        )
        object.__setattr__(self, "_labels", cache)

    @property
    def label_names(self) -> list[str]:
        return label_names_for(self.settings.group_by)

    def request(self, now: float) -> ApiRequest:
        return ApiRequest(ENDPOINT, "GET", PATH, windowed_params(self.settings, now))

    def render(self, body: bytes) -> Rendered:
        with gc_paused():
            rows = decode_rows(body)
            labels = self._labels.labels_of(rows)
            return render_rows(rows, labels, self.settings.max_series)
