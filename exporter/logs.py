"""Logging set-up: logfmt or JSON lines, one event per line, secrets redacted at the last step.

Every record passes through :class:`Redactor` after formatting, so even a secret that slips
into a message (an error body that echoes a request, an exception text) never reaches output.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
REDACTED = "[REDACTED]"
# Attributes every LogRecord has; anything else came in through ``extra=`` and is a field.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Redactor:
    """Knows the current secrets and removes them from any text."""

    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        # Very short strings would redact ordinary words; real keys are 32+ characters.
        if len(secret) >= 8:
            with self._lock:
                self._secrets = self._secrets | {secret}

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def add_flags(parser: argparse.ArgumentParser, *, format_help: str) -> None:
    """``--log.level`` and ``--log.format``, the same in every command; ``format_help`` says
    what the command logs."""
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=list(LEVELS),
        default="info",
        help="the least severe events logged",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=["logfmt", "json"],
        default="logfmt",
        help=format_help,
    )


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
        f".{int(record.msecs):03d}Z"
    )


def _single_line(text: str) -> str:
    return text.replace("\n", " | ")


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=info logger=exporter.x msg="..." key=value``."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        pairs = {
            "ts": _timestamp(record),
            "level": record.levelname.lower().replace("warning", "warn"),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            pairs["error"] = f"{type(error).__name__}: {error}"
        return self.redactor.redact(" ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs.items()))


def _logfmt_value(value: Any) -> str:
    text = _single_line(str(value))
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower().replace("warning", "warn"),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        document.update(
            {
                k: v if isinstance(v, int | float | bool) else str(v)
                for k, v in _fields(record).items()
            }
        )
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            document["error"] = f"{type(error).__name__}: {error}"
        return self.redactor.redact(json.dumps(document, ensure_ascii=False))


def setup_logging(level: str, fmt: str, redactor: Redactor, stream: TextIO | None = None) -> None:
    """Route every logger (ours, aiohttp's) through one redacting handler on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else LogfmtFormatter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # aiohttp's access log would print every scrape; it adds nothing an SRE needs.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
