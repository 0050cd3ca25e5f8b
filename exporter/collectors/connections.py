"""CNM aggregated connections: ``GET /api/v2/network/connections/aggregate``.

A poll of query ``svc_to_svc`` grouped by ``client_service, server_service`` renders, per row:

    datadog_cnm_tcp_retransmits{query="svc_to_svc",client_service="web",server_service="db"} 42
    datadog_cnm_tcp_rtt_seconds{query="svc_to_svc",client_service="web",server_service="db"} 0.0012

A metric missing from a row yields no sample (absent is unknown, not zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
from msgspec.structs import astuple

from ..exposition import Family, Rendered, RenderedFamily, escape_label_value, label_names_for
from ..gcpause import gc_paused
from ..settings import DEFAULT_ACCOUNT, ConnectionsQuery
from .base import ApiRequest, DecodeError

ENDPOINT = "connections"
PATH = "/api/v2/network/connections/aggregate"

Number = int | float


class _Attributes(msgspec.Struct, gc=False):
    group_bys: dict[str, list[str]] | None = None
    bytes_sent_by_client: Number | None = None
    bytes_sent_by_server: Number | None = None
    packets_sent_by_client: Number | None = None
    packets_sent_by_server: Number | None = None
    rtt_micro_seconds: Number | None = None
    tcp_retransmits: Number | None = None
    tcp_resets: Number | None = None
    tcp_rto_count: Number | None = None
    tcp_timeouts: Number | None = None
    tcp_refusals: Number | None = None
    tcp_established_connections: Number | None = None
    tcp_closed_connections: Number | None = None
    tcp_delivered_ce: Number | None = None
    tcp_probe0_count: Number | None = None
    tcp_rcv_ooo_pack: Number | None = None
    tcp_recovery_count: Number | None = None
    tcp_reord_seen: Number | None = None


class _Row(msgspec.Struct, gc=False):
    attributes: _Attributes | None = None


class _Response(msgspec.Struct, gc=False):
    data: list[_Row]


_decoder = msgspec.json.Decoder(_Response)

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


def windowed_params(query: ConnectionsQuery, now: float) -> dict[str, str]:
    """Query-string parameters shared by the windowed endpoints (connections and DNS)."""
    to = math.floor(now - query.delay)
    params = {
        "from": str(to - max(1, round(query.window))),
        "to": str(to),
        "limit": str(query.limit),
    }
    if query.group_by:
        params["group_by"] = ",".join(query.group_by)
    if query.tags:
        params["tags"] = ",".join(query.tags)
    if query.query:
        params["query"] = query.query
    return params


def label_prefix(query_name: str, account: str | None = None) -> str:
    """The ``query="..."`` pair every data series of a query starts with (and its account)."""
    prefix = f'query="{escape_label_value(query_name)}"'
    if account is not None:
        prefix += f',account="{escape_label_value(account)}"'
    return prefix


def group_labels(
    group_bys: dict[str, list[str]] | None, fields: list[str], names: list[str]
) -> str:
    """``,client_service="web",server_service="db"`` for one row (several values join with ,).

    A requested field missing from the row gets an empty value, which Prometheus treats as
    the label being absent.
    """
    if not group_bys:
        return ""
    parts = []
    for field, name in zip(fields, names, strict=True):
        values = group_bys.get(field)
        if values:
            parts.append(f',{name}="{escape_label_value(",".join(values))}"')
    return "".join(parts)


def decode_rows(body: bytes) -> list[_Row]:
    try:
        return _decoder.decode(body).data
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(f"unexpected connections answer: {exc}") from None


def render_rows(
    rows: list[_Row],
    query_name: str,
    fields: list[str],
    names: list[str],
    account: str | None = None,
) -> Rendered:
    """Render decoded rows into one text chunk per family.

    Rows are turned into columns first so each family is one list comprehension: this keeps
    the per-sample work to a single string format (see the benchmark for the figures).
    """
    prefix = "{" + label_prefix(query_name, account)
    labels: list[str] = []
    value_rows: list[tuple[object, ...]] = []
    seen: set[str] = set()
    for row in rows:
        attrs = row.attributes
        if attrs is None:
            continue
        row_labels = prefix + group_labels(attrs.group_bys, fields, names) + "} "
        if row_labels in seen:
            # Two rows with the same label set would be a duplicate series: keep the first.
            continue
        seen.add(row_labels)
        labels.append(row_labels)
        value_rows.append(astuple(attrs))
    if not value_rows:
        return Rendered(families=(), series=0)
    columns = list(zip(*value_rows, strict=True))[1:]  # column 0 is group_bys
    families = []
    series = 0
    for (attribute, family), column in zip(FIELDS, columns, strict=True):
        name = family.name
        if attribute == _RTT_ATTRIBUTE:
            lines = [
                f"{name}{lab}{v / 1e6}\n"
                for lab, v in zip(labels, column, strict=True)
                if v is not None
            ]
        else:
            lines = [
                f"{name}{lab}{v}\n" for lab, v in zip(labels, column, strict=True) if v is not None
            ]
        if lines:
            series += len(lines)
            families.append(RenderedFamily(family, "".join(lines).encode()))
    return Rendered(families=tuple(families), series=series)


@dataclass(frozen=True)
class ConnectionsJob:
    """A configured connections query, ready to poll."""

    settings: ConnectionsQuery
    account: str = DEFAULT_ACCOUNT
    # Series carry ``account="..."`` only when the configuration has an ``accounts:`` list.
    account_label: bool = False
    collector: str = "connections"
    endpoint: str = ENDPOINT

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def interval(self) -> float:
        return self.settings.interval

    @property
    def window(self) -> float | None:
        return self.settings.window

    @property
    def keep_stale_seconds(self) -> float:
        return self.settings.keep_stale_seconds

    @property
    def label_names(self) -> list[str]:
        return label_names_for(self.settings.group_by)

    def request(self, now: float) -> ApiRequest:
        return ApiRequest(ENDPOINT, "GET", PATH, windowed_params(self.settings, now))

    def render(self, body: bytes) -> Rendered:
        with gc_paused():
            rows = decode_rows(body)
            return render_rows(
                rows,
                self.name,
                self.settings.group_by,
                self.label_names,
                self.account if self.account_label else None,
            )
