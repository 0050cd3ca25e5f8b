"""RUM Audience Management connections: ``GET /api/v2/product-analytics/{entity}/mapping/connections``.

A poll of entity ``users`` renders, per connection, and once per entity:

    datadog_audience_connection_info{entity="users",connection_id="3a8f",type="ref_table",join_attribute="usr.email",join_type="email"} 1
    datadog_audience_connection_fields{entity="users",connection_id="3a8f"} 2
    datadog_audience_connection_created_timestamp_seconds{entity="users",connection_id="3a8f"} 1.7093e+09
    datadog_audience_connection_updated_timestamp_seconds{entity="users",connection_id="3a8f"} 1.7369e+09
    datadog_audience_connections{entity="users"} 3

Absent means unknown: no ``fields`` list, no timestamp, no sample. Go's zero time
(``0001-01-01T00:00:00Z``, how a Go service writes "never set") and any other time before
1970 count as absent, as does a time that is not RFC 3339; a time without an offset is UTC.
With an ``accounts:`` section every series also carries ``account`` (after ``entity``).
A connection without an id cannot be told apart from another, so it only counts towards
``datadog_audience_connections``; of two connections with the same id the first is kept.
``max_series`` keeps the count and as many connections, each with all its series, as fit.
"""  # noqa: E501

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from ..config.schema import DEFAULT_MAX_SERIES, AudienceQuery
from ..exposition import (
    ACCOUNT_IF_CONFIGURED,
    Family,
    Rendered,
    RenderedFamily,
    Value,
    escape_label_value,
    format_value,
)
from .helpers import PolledJob, decode, decoding, keep_rows
from .protocol import ApiRequest

PATH = "/api/v2/product-analytics/{entity}/mapping/connections"

# Every series names the entity (and the account, with accounts:); a connection's, its id.
_ENTITY = ("entity", ACCOUNT_IF_CONFIGURED)
_CONNECTION = (*_ENTITY, "connection_id")
INFO = Family(
    "datadog_audience_connection_info",
    "A RUM Audience Management data connection of the entity; always 1, labels describe it.",
    labels=(*_CONNECTION, "type", "join_attribute", "join_type"),
    value=Value.INFO,
)
FIELDS = Family(
    "datadog_audience_connection_fields",
    "Fields the connection imports into the entity.",
    labels=_CONNECTION,
)
CREATED = Family(
    "datadog_audience_connection_created_timestamp_seconds",
    "Unix time the connection was created (absent when Datadog does not say).",
    labels=_CONNECTION,
    value=Value.TIMESTAMP,
)
UPDATED = Family(
    "datadog_audience_connection_updated_timestamp_seconds",
    "Unix time the connection was last updated (absent when Datadog does not say).",
    labels=_CONNECTION,
    value=Value.TIMESTAMP,
)
CONNECTIONS = Family(
    "datadog_audience_connections",
    "Data connections Datadog lists for the entity.",
    labels=_ENTITY,
)
FAMILIES = (INFO, FIELDS, CREATED, UPDATED, CONNECTIONS)


class _Join(msgspec.Struct, gc=False):
    attribute: str | None = None
    type: str | None = None


class _Connection(msgspec.Struct, gc=False):
    id: str | None = None
    type: str | None = None
    join: _Join | None = None
    # Only the number of fields is exported; their contents are not decoded.
    fields: list[msgspec.Raw] | None = None
    created_at: str | None = None
    updated_at: str | None = None


class _Attributes(msgspec.Struct, gc=False):
    connections: list[_Connection] = []


class _Data(msgspec.Struct, gc=False):
    attributes: _Attributes | None = None


class _Response(msgspec.Struct, gc=False):
    data: _Data


_decoder = msgspec.json.Decoder(_Response)


def parse_timestamp(text: str | None) -> float | None:
    """RFC 3339 -> Unix seconds; None for absent, unparsable, or before 1970 (Go's "not set")."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    except (ValueError, OverflowError):
        return None
    return seconds if seconds >= 0 else None


def decode_answer(body: bytes) -> list[_Connection]:
    data = decode(_decoder, body, "audience").data
    return data.attributes.connections if data.attributes else []


def _connection_lines(entity_label: str, connection: _Connection) -> list[tuple[Family, str]]:
    """The samples of one connection (which has an id): info, and what Datadog says of it."""
    assert connection.id is not None
    labels = f'{{{entity_label},connection_id="{escape_label_value(connection.id)}"'
    join = connection.join or _Join()
    described = (
        f'{labels},type="{escape_label_value(connection.type or "")}"'
        f',join_attribute="{escape_label_value(join.attribute or "")}"'
        f',join_type="{escape_label_value(join.type or "")}"}}'
    )
    lines = [(INFO, f"{INFO.name}{described} 1\n")]
    if connection.fields is not None:
        lines.append((FIELDS, f"{FIELDS.name}{labels}}} {len(connection.fields)}\n"))
    for family, text in ((CREATED, connection.created_at), (UPDATED, connection.updated_at)):
        seconds = parse_timestamp(text)
        if seconds is not None:
            lines.append((family, f"{family.name}{labels}}} {format_value(seconds)}\n"))
    return lines


def render_answer(
    connections: list[_Connection],
    entity: str,
    account: str | None = None,
    max_series: int = DEFAULT_MAX_SERIES,
) -> Rendered:
    """Render one answer; the count is always kept, connections as :func:`keep_rows` says."""
    entity_label = f'entity="{escape_label_value(entity)}"'
    if account is not None:
        entity_label += f',account="{escape_label_value(account)}"'
    identified = [connection for connection in connections if connection.id is not None]
    samples = [_connection_lines(entity_label, connection) for connection in identified]
    # The count of connections takes one series of the budget.
    kept = keep_rows(
        [connection.id for connection in identified],
        lambda index: len(samples[index]),
        max_series - 1,
        most_per_row=4,
    )
    lines: dict[Family, list[str]] = {family: [] for family in FAMILIES}
    for index in kept.indexes:
        for family, line in samples[index]:
            lines[family].append(line)
    lines[CONNECTIONS].append(f"{CONNECTIONS.name}{{{entity_label}}} {len(connections)}\n")
    rendered = tuple(
        RenderedFamily(family, "".join(family_lines).encode())
        for family, family_lines in lines.items()
        if family_lines
    )
    series = sum(len(family_lines) for family_lines in lines.values())
    return Rendered(
        families=rendered, series=series, dropped_rows=kept.dropped, rows=len(connections)
    )


@dataclass(frozen=True)
class AudienceJob(PolledJob[AudienceQuery]):
    """A configured audience entity, ready to poll."""

    def request(self, now: float) -> ApiRequest:
        return ApiRequest(self.endpoint, "GET", PATH.format(entity=self.settings.entity))

    def decode(self, body: bytes) -> list[_Connection]:
        with decoding("audience"):
            return decode_answer(body)

    def render(self, answer: list[_Connection]) -> Rendered:
        with decoding("audience"):
            return render_answer(
                answer, self.settings.entity, self.account_label_value, self.settings.max_series
            )
