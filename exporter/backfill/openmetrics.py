"""OpenMetrics text for backfilling: the live exporter's samples, timestamped (pure).

The live exporter serves the Prometheus text format 0.0.4; ``promtool tsdb
create-blocks-from openmetrics`` reads OpenMetrics 1.0, which differs where it matters here:

- the exposition MUST end with ``# EOF`` (promtool refuses a file without it);
- MetricFamilies MUST NOT be interleaved, nor the points of one series (Metric): a file is
  written family by family, series by series, each series' points in increasing time;
- every sample carries a timestamp, in seconds (0.0.4 uses milliseconds);
- a counter's samples end in ``_total``; every family written here is a gauge, which
  needs no suffix (``datadog_exporter_window_seconds`` included);
- HELP escapes ``"`` as well as backslash and newline.

Label values are escaped the same way in both formats, so the live exporter's rendered
label text is used as it is: backfilled series carry exactly the live label sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from ..exposition import Family, escape_label_value

EOF_LINE = b"# EOF\n"


def header(family: Family) -> bytes:
    """``# HELP`` and ``# TYPE`` lines of a family, escaped the OpenMetrics way."""
    text = family.help.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f"# HELP {family.name} {text}\n# TYPE {family.name} {family.type}\n".encode()


def target_labels(labels: Iterable[tuple[str, str]]) -> bytes:
    """``job="x",instance="y",`` to put in front of a series' own labels (or nothing)."""
    return b"".join(f'{name}="{escape_label_value(value)}",'.encode() for name, value in labels)


def split_samples(name: str, samples: bytes, targets: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
    """``(labels, value)`` of each line a collector rendered for family ``name``.

    The lines are ``name{labels} value``; ``targets`` (see :func:`target_labels`) go first
    inside the braces. A value never holds a space while a label value may, so the value is
    what follows the last space. Every data series has at least the ``query`` label.
    """
    skip = len(name)
    for line in samples.split(b"\n"):
        if not line:
            continue
        labels, _, value = line[skip:].rpartition(b" ")
        yield (b"{" + targets + labels[1:] if targets else labels), value


def sample_line(name: bytes, labels: bytes, value: bytes, t: int) -> bytes:
    return b"%s%s %s %d\n" % (name, labels, value, t)


class FamilyWriter:
    """Writes rows ordered by (family, labels, t) as one exposition, headers where needed.

    The caller guarantees the order (the journal sorts); this only adds each family's
    header before its first row and, with :meth:`close`, the ``# EOF`` line.
    """

    def __init__(self, out: BinaryIO, headers: dict[str, bytes]) -> None:
        self.out = out
        self.headers = headers
        self._family: str | None = None
        self._name = b""
        self.samples = 0

    def write(self, family: str, labels: bytes, t: int, value: bytes) -> None:
        if family != self._family:
            self.out.write(self.headers[family])
            self._family, self._name = family, family.encode()
        self.out.write(sample_line(self._name, labels, value, t))
        self.samples += 1

    def close(self) -> None:
        self.out.write(EOF_LINE)
