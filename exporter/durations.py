"""Prometheus-style durations (``500ms``, ``30s``, ``5m``, ``1h30m``) as float seconds.

Owns parsing and formatting only; the settings models decide which ranges are allowed.
"""

from __future__ import annotations

import math
import re

from .quoting import quoted

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")
# Far longer than any duration anyone writes ("1h30m", "1.5d"): a longer text is refused
# before any parsing, so its cost stays bounded whatever its size.
MAX_DURATION_CHARS = 1000
# The whole text parse_duration accepts, surrounding blanks included, as a JSON Schema
# (ECMA-262) pattern: the configuration's JSON Schema takes it from here, so the two agree.
DURATION_PATTERN = r"^\s*" + _WHOLE.pattern + r"\s*$"


def parse_duration(text: str) -> float:
    """Return the seconds in ``text``; raise ValueError naming the accepted forms."""
    hint = "use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 1h30m"
    if len(text) > MAX_DURATION_CHARS:
        raise ValueError(f"invalid duration {quoted(text)}: too long; {hint}")
    stripped = text.strip()
    if not _WHOLE.fullmatch(stripped):
        raise ValueError(f"invalid duration {quoted(text)}: {hint}")
    seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(stripped))
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {quoted(text)}: too large")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds the way a user would write them in the config (``90s`` -> ``1m30s``).

    To the millisecond: the value is rounded first, so a unit never shows 60 (``1m60s``) or
    1000 (``1000ms``). Hours are the largest unit, as in Prometheus' own output.
    """
    if seconds < 0:  # an age across a clock step; shown as it is rather than garbled
        return "-" + format_duration(-seconds)
    total_ms = round(seconds * 1000)
    if total_ms == 0:
        return "0s"
    if total_ms < 1000:
        return f"{total_ms}ms"
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, ms = divmod(rest, 1000)
    parts = [f"{hours}h"] if hours else []
    if minutes:
        parts.append(f"{minutes}m")
    if ms:
        parts.append(f"{whole}.{ms:03d}".rstrip("0") + "s")
    elif whole:
        parts.append(f"{whole}s")
    return "".join(parts)


def with_unit(value: float) -> str:
    """A bare number of seconds as the duration a user should have written (``60`` -> ``60s``).

    Not :func:`format_duration`: the message must show the number the user typed, with a
    unit added, so they recognise it (``60s``, not ``1m``).
    """
    return f"{value:g}s"


def bare_number_message(value: float) -> str:
    """Why a number without a unit is refused where a duration belongs (as Prometheus does)."""
    return f"a duration needs a unit, as in Prometheus: write {with_unit(value)} (got {value!r})"


def bound_message(op: str, bound: float) -> str:
    """A duration's bound, with its unit: ``must be >= 1s``."""
    return f"must be {op} {format_duration(bound)}"
