"""What the collector modules share: the job shell, window parameters, labels, safe decoding.

Pure helpers only; each collector module keeps its own request, schema and families.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from ..config.schema import DEFAULT_ACCOUNT, PolledQuery, WindowedQuery
from ..exposition import escape_label_value
from .base import DecodeError

Q = TypeVar("Q", bound=PolledQuery)
T = TypeVar("T")

# JSON numbers as the answers carry them; msgspec rejects booleans and strings for these.
Number = int | float


@dataclass(frozen=True)
class PolledJob(Generic[Q]):
    """The QueryJob properties every collector's job reads the same way from its settings."""

    settings: Q
    account: str = DEFAULT_ACCOUNT
    # Series carry ``account="..."`` only when the configuration has an ``accounts:`` list.
    account_label: bool = False

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def interval(self) -> float:
        return self.settings.interval

    @property
    def window(self) -> float | None:
        # Only windowed queries have one; the others get no datadog_exporter_window_seconds.
        return self.settings.window if isinstance(self.settings, WindowedQuery) else None

    @property
    def keep_stale_seconds(self) -> float:
        return self.settings.keep_stale_seconds

    @property
    def series_account(self) -> str | None:
        """The ``account`` label value of the job's series, or None when there is none."""
        return self.account if self.account_label else None


def windowed_params(query: WindowedQuery, now: float) -> dict[str, str]:
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
    group_bys: Mapping[str, Sequence[str]] | None, fields: Sequence[str], names: Sequence[str]
) -> str:
    """``,client_service="web",server_service="db"`` for one row (several values join with ,).

    A requested field missing from the row gets no pair, which Prometheus reads the same as
    an empty value: the label is absent.
    """
    if not group_bys:
        return ""
    parts = []
    for field, name in zip(fields, names, strict=True):
        values = group_bys.get(field)
        if values:
            parts.append(f',{name}="{escape_label_value(",".join(values))}"')
    return "".join(parts)


def decode(decoder: msgspec.json.Decoder[T], body: bytes, what: str) -> T:
    """Decode ``body``; any malformed or mistyped answer becomes a DecodeError naming ``what``."""
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(f"unexpected {what} answer: {exc}") from None
