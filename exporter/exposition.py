"""Prometheus text exposition: label names, label values, sample lines, family headers.

Pure functions over strings and bytes; no I/O, no clock, no prometheus_client objects.
Data families are rendered here as text once per poll, so a scrape only copies bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import StrEnum

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_label_name(field: str) -> str:
    """Turn a Datadog field name into a valid Prometheus label name.

    ``network.client.ip`` -> ``network_client_ip``; a leading digit gets a ``_`` prefix, and
    names Prometheus reserves (leading ``__``) get a ``tag`` prefix.
    """
    name = _INVALID_LABEL_CHARS.sub("_", field) or "_"
    if name[0].isdigit():
        name = "_" + name
    if name.startswith("__"):
        name = "tag" + name
    return name


# Labels the exporter itself puts on data series; Datadog fields of the same name are renamed.
# ``account`` is reserved even without accounts, so configuring them later renames nothing.
RESERVED_LABELS = ("query", "account")


def label_names_for(fields: Sequence[str], reserved: Iterable[str] = RESERVED_LABELS) -> list[str]:
    """One distinct label name per field, in order, never equal to a reserved label.

    A field that sanitizes to a reserved name becomes ``exported_<name>`` (the convention
    Prometheus itself uses for clashing target labels); later fields that clash with an earlier
    one get ``_2``, ``_3``... so no label is lost and no two series collapse into one.
    """
    taken = set(reserved)
    names = []
    for field in fields:
        base = sanitize_label_name(field)
        if base in reserved:
            base = "exported_" + base
        name, counter = base, 2
        while name in taken:
            name = sanitize_label_name(f"{base}_{counter}")
            counter += 1
        taken.add(name)
        names.append(name)
    return names


def escape_label_value(value: str) -> str:
    """Escape backslash, double quote and newline, the three the text format requires."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def format_value(value: float | int) -> str:
    """A sample value as the text format spells it."""
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class Value(StrEnum):
    """What a family's sample value is: its type alone does not say (a gauge may hold a total
    over a window). The metrics reference (``python -m exporter.docs``) states it per family."""

    WINDOW_TOTAL = "total over the query's window"
    WINDOW_AVERAGE = "average over the query's window"
    CURRENT = "value at the last poll or scrape"
    TIMESTAMP = "Unix time"
    INFO = "always 1; the labels carry the information"
    AS_SENT = "as Datadog sends it (its unit is not documented)"
    COUNTER = "running total since the exporter started"

    @property
    def use(self) -> str:
        """How to read such a value in PromQL."""
        return _VALUE_USE[self]


_VALUE_USE = {
    Value.WINDOW_TOTAL: "divide by `datadog_exporter_window_seconds` for a per-second rate; "
    "not a counter: no `rate()`",
    Value.WINDOW_AVERAGE: "use as is; not a counter: no `rate()`",
    Value.CURRENT: "use as is",
    Value.TIMESTAMP: "compare with `time()`",
    Value.INFO: "join on its labels (`* on (...) group_left`)",
    Value.AS_SENT: "compare with itself over time; no unit is promised",
    Value.COUNTER: "`rate()` or `increase()`; resets when the exporter restarts",
}

# Stand-ins in Family.labels for labels whose presence or names come from the configuration.
# Written in angle brackets, as the reference shows them.
GROUP_BY_LABELS = "<one per group_by field>"
ACCOUNT_IF_CONFIGURED = "<account, with accounts: only>"
# The labels of a windowed query's series (connections, dns): what label_prefix and the
# group_by fields give.
QUERY_LABELS = ("query", ACCOUNT_IF_CONFIGURED, GROUP_BY_LABELS)


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family's identity: name, HELP text and type.

    ``labels``, ``value`` and ``note`` only document the family (the metrics reference is
    generated from them; ``note`` says there what the HELP text is too short for); they take
    no part in equality or the exposition.
    """

    name: str
    help: str
    type: str = "gauge"
    labels: tuple[str, ...] = dataclass_field(default=(), compare=False)
    value: Value = dataclass_field(default=Value.CURRENT, compare=False)
    note: str = dataclass_field(default="", compare=False)

    def header(self) -> bytes:
        escaped = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return f"# HELP {self.name} {escaped}\n# TYPE {self.name} {self.type}\n".encode()


@dataclass(frozen=True, slots=True)
class RenderedFamily:
    """One query's sample lines for one family (no header), ready to be served."""

    family: Family
    samples: bytes


@dataclass(frozen=True, slots=True)
class Rendered:
    """The whole rendered answer of one poll of one query."""

    families: tuple[RenderedFamily, ...]
    series: int
    dropped_rows: int = 0
    # Samples left out because Datadog sent a number Prometheus cannot read (beyond float64).
    invalid_values: int = 0
    # Rows (groups, connections) the answer carried, before any was dropped for max_series:
    # 0 is an answer that matched nothing, which is not the same as health.
    rows: int = 0
    # Each configured group_by field with True when no row of a non-empty answer resolved
    # it (absent, or ``N/A``, everywhere): almost always a field Datadog does not know.
    # Empty for an empty answer (nothing to judge by) and for queries without group_by.
    group_by_unresolved: tuple[tuple[str, bool], ...] = ()
