"""The TIME grammar of ``--start`` / ``--end``: RFC 3339, Unix seconds, or "that long ago".

``2024-05-01T00:00:00Z`` and ``2024-05-01T02:00:00+02:00`` are instants (an offset is
required: RFC 3339 has no local time); ``1714521600`` is Unix seconds; ``14d``, ``36h``,
``1h30m`` are durations before ``now`` (the Prometheus duration syntax of the
configuration). Pure: ``now`` is passed in.
"""

from __future__ import annotations

import re
from datetime import datetime

from ..durations import parse_duration

# Datadog keeps CNM and DNS data for about this long; older windows come back empty.
RETENTION_SECONDS = 14 * 86400
# --end defaults to this long ago (as `promtool tsdb create-blocks-from rules` does), so
# backfilled blocks never overlap the head block of a running Prometheus.
DEFAULT_END_AGO_SECONDS = 3 * 3600

_UNIX = re.compile(r"\d+(?:\.\d+)?")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def parse_time(text: str, now: float) -> float:
    """Unix seconds for ``text``; raise ValueError naming the three accepted forms."""
    stripped = text.strip()
    if _UNIX.fullmatch(stripped):
        return float(stripped)
    if _RFC3339.fullmatch(stripped):
        return datetime.fromisoformat(stripped.upper().replace("Z", "+00:00")).timestamp()
    try:
        return now - parse_duration(stripped)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use RFC 3339 (2024-05-01T00:00:00Z), Unix seconds "
            "(1714521600) or a duration meaning that long ago (14d, 36h)"
        ) from None
