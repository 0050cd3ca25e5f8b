"""Prometheus-style durations (``500ms``, ``30s``, ``5m``, ``1h30m``) as float seconds.

Owns parsing and formatting only; the settings models decide which ranges are allowed.
"""

from __future__ import annotations

import re

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


def parse_duration(text: str) -> float:
    """Return the seconds in ``text``; raise ValueError naming the accepted forms."""
    stripped = text.strip()
    if not _WHOLE.fullmatch(stripped):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, e.g. 500ms, 30s, 5m, 1h, 1h30m"
        )
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(stripped))


def format_duration(seconds: float) -> str:
    """Render seconds the way a user would write them in the config (``90s`` -> ``1m30s``)."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    parts = []
    remaining = seconds
    for unit in ("h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        count = int(remaining // size) if unit != "s" else remaining
        if unit == "s":
            if count:
                parts.append(f"{count:g}s")
        elif count:
            parts.append(f"{count}{unit}")
            remaining -= count * size
    return "".join(parts)
