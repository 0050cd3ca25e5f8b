"""How a value from outside (a configuration file, a command line) is quoted in a message.

A bad value may be megabytes long (a configuration tool gone wrong, a hostile file): an
error line quotes at most a short prefix and says how long the value is, so a mistake costs
one readable line, not a copy of the value in every log line and its memory.
"""

from __future__ import annotations

# Characters of a value quoted in a message; enough to recognise it.
QUOTE_CHARS = 40


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)``, or for a long string the repr of its first ``limit`` characters,
    ``...`` and its length: ``'1111...'... (52,428,800 characters)``."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        text = repr(value)
        return text if len(text) <= 2 * limit else f"{text[:limit]}... ({len(text):,} characters)"
    return f"<{type(value).__name__}>"
