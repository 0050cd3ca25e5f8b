"""What the collector modules share: the job shell, window parameters, labels, safe decoding,
the check that a JSON number is one Prometheus can read (:func:`number`), the one rule
for which rows of an answer are rendered (:func:`keep_rows`), and the rule for which
group_by fields an answer left unresolved where each row carries its fields apart
(:func:`unresolved_fields`; cases, whose groups join their fields in one string, judge them
by position in ``cases.unresolved_groups``).

Pure helpers only; each collector module keeps its own request, schema and families.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

from ..config.schema import DEFAULT_ACCOUNT, PolledQuery, TimeWindowQuery, WindowedQuery
from ..exposition import escape_label_value
from .protocol import NO_CNM_HINT, ApiRequest, DecodeError

Q = TypeVar("Q", bound=PolledQuery)
T = TypeVar("T")

# JSON numbers as the answers carry them; msgspec rejects booleans and strings for these.
Number = int | float
_number_decoder = msgspec.json.Decoder(Number | None)
# The largest integer that rounds to a finite float64 (one below the midpoint between the
# largest float and 2**1024, where round-half-even goes to infinity).
_FLOAT_MAX_INT = 2**1024 - 2**970 - 1
# What a hostile body can make decoding or rendering raise besides msgspec's own errors:
# nesting deeper than the interpreter's recursion limit, and shape surprises that reach
# Python code (a huge integer where a float is computed, say).
_SHAPE_ERRORS = (
    RecursionError,
    UnicodeError,
    ValueError,
    OverflowError,
    TypeError,
    KeyError,
    IndexError,
)


# How Datadog spells a group_by value it could not resolve (its UI shows the same).
NOT_AVAILABLE = "N/A"


class UnreadableNumber(Exception):
    """A JSON number Prometheus cannot read: beyond float64's range (``1e999``, 400 digits).

    Such a value costs only its own sample: the collector leaves it out and counts it in
    ``Rendered.invalid_values``; the rest of the answer is rendered.
    """


@dataclass(frozen=True)
class PolledJob(Generic[Q]):
    """The QueryJob properties every collector's job reads the same way from its settings."""

    settings: Q
    account: str = DEFAULT_ACCOUNT
    # Series carry ``account="..."`` only when the configuration has an ``accounts:`` list.
    account_label: bool = False

    @property
    def collector(self) -> str:
        return self.settings.section

    @property
    def endpoint(self) -> str:
        return self.settings.endpoint

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def interval(self) -> float:
        return self.settings.interval

    @property
    def window(self) -> float | None:
        # Only windowed queries have one; the others get no datadog_exporter_window_seconds.
        return self.settings.window if isinstance(self.settings, TimeWindowQuery) else None

    @property
    def effective_stale_after(self) -> float:
        return self.settings.effective_stale_after

    @property
    def label_names(self) -> list[str]:
        """Labels named after the query's fields (its group_by); none unless a collector says."""
        return []

    @property
    def empty_answer_is_news(self) -> bool:
        """Most endpoints answer something for any query that matches: 0 rows is news."""
        return True

    @property
    def account_label_value(self) -> str | None:
        """The ``account`` label value of the job's series, or None when there is none."""
        return self.account if self.account_label else None


def window_params(query: TimeWindowQuery, now: float) -> dict[str, str]:
    """``from`` and ``to`` (Unix seconds) of the window a poll starting at ``now`` asks for."""
    to = math.floor(now - query.delay)
    return {"from": str(to - max(1, round(query.window))), "to": str(to)}


def windowed_request(endpoint: str, path: str, query: WindowedQuery, now: float) -> ApiRequest:
    """The GET of a windowed (CNM) endpoint for a poll at ``now``; a bare 400 from it most
    likely means Cloud Network Monitoring is off for the organisation."""
    return ApiRequest(endpoint, "GET", path, windowed_params(query, now), bare_400_hint=NO_CNM_HINT)


def windowed_params(query: WindowedQuery, now: float) -> dict[str, str]:
    """Query-string parameters shared by the CNM aggregate endpoints (connections and DNS)."""
    params = {**window_params(query, now), "limit": str(query.limit)}
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
    """Decode ``body``; any malformed or mistyped answer becomes a DecodeError naming ``what``.

    Nesting deeper than the recursion limit (msgspec raises RecursionError) and strings that
    are not UTF-8 count as malformed too.
    """
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise DecodeError(f"unexpected {what} answer: {exc}") from None


@contextmanager
def decoding(what: str) -> Iterator[None]:
    """Turn whatever decoding and rendering a bad body raise into a DecodeError naming ``what``.

    The decoders already reject what they foresee with a precise message; this is the net
    under them, so a body of a shape nobody foresaw fails its poll as ``decode_error`` rather
    than ending the query's loop.
    """
    try:
        yield
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(f"unexpected {what} answer: {exc}") from None
    except _SHAPE_ERRORS as exc:
        raise DecodeError(f"unexpected {what} answer: {type(exc).__name__}: {exc}") from None


def number(value: Number | msgspec.Raw | None, what: str) -> Number | None:
    """The JSON number ``value`` (decoded first if still raw text); None for null or absent.

    Raises UnreadableNumber for a number beyond float64's range, which Prometheus' parser
    rejects, and DecodeError (naming ``what``) for anything that is not a number at all.
    """
    decoded: Number | None
    if isinstance(value, msgspec.Raw):
        if not value:
            return None
        try:
            decoded = _number_decoder.decode(value)
        except msgspec.ValidationError as exc:
            if bytes(value)[:1] in b"-0123456789":
                raise UnreadableNumber(what) from None  # msgspec: "Number out of range"
            raise DecodeError(f"{what}: {exc}") from None
    else:
        decoded = value
    if isinstance(decoded, int) and not -_FLOAT_MAX_INT <= decoded <= _FLOAT_MAX_INT:
        # Python keeps integers of any size; Prometheus reads values as float64.
        raise UnreadableNumber(what)
    return decoded


@dataclass(frozen=True, slots=True)
class Kept:
    """The rows of an answer to render, by index in answer order, and how many were dropped."""

    indexes: Sequence[int]
    dropped: int = 0
    # True when every row is kept (``indexes`` is then ``range(len(rows))``).
    everything: bool = False


def keep_rows(
    label_sets: Sequence[Hashable],
    series_of: Callable[[int], int],
    max_series: int,
    *,
    most_per_row: int | None = None,
) -> Kept:
    """Which rows to render: the first row of each label set, then as many leading rows as fit.

    Two rows with the same label set would be one series exported twice, so only the first
    is kept. Then rows are kept in answer order (Datadog sorts them biggest first) while
    their series (``series_of(index)``) fit in ``max_series``; from the first that does not
    fit on, distinct rows are dropped and counted. ``most_per_row``, the most series a row
    can have, lets an answer that fits whatever its rows hold skip counting them.

    ``series_of`` is asked only about first rows of their label set, in order, up to the
    first that does not fit: a collector that reads a row's values there (see
    :func:`number`) reads no duplicate and nothing past the cut-off.
    """
    count = len(label_sets)
    if len(set(label_sets)) == count:
        indexes: Sequence[int] = range(count)
    else:
        first = {labels: index for index, labels in reversed(list(enumerate(label_sets)))}
        indexes = sorted(first.values())
    if most_per_row is not None and len(indexes) * most_per_row <= max_series:
        return Kept(indexes, 0, len(indexes) == count)
    series = 0
    for position, index in enumerate(indexes):
        series += series_of(index)
        if series > max_series:
            return Kept(indexes[:position], len(indexes) - position)
    return Kept(indexes, 0, len(indexes) == count)


def resolved_in(group_bys: Mapping[str, Sequence[str]] | None, fields: Sequence[str]) -> set[str]:
    """The ``fields`` one row resolved: present with at least one value other than ``N/A``."""
    if not group_bys:
        return set()
    return {
        field
        for field in fields
        if any(value != NOT_AVAILABLE for value in group_bys.get(field) or ())
    }


def unresolved_fields(
    fields: Sequence[str], resolved: set[str], rows: int
) -> tuple[tuple[str, bool], ...]:
    """Each configured group_by field with True when no row of the answer resolved it.

    An empty answer (``rows`` 0) judges no field: it is reported as empty instead. A field
    absent or ``N/A`` in every row of a non-empty answer is almost always one Datadog does
    not know (a typo, a tag that is not set), and its label never appears on any series.
    """
    if not rows:
        return ()
    return tuple((field, field not in resolved) for field in fields)
