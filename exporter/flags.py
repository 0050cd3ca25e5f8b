"""What the two command lines (the exporter's and ``backfill``'s) share in their ``--help``:
defaults shown after each flag's help, and the environment variables and exit codes below the
flags. Each command keeps those as data next to its parser; the command-line reference
(``python -m exporter.docs``) is generated from the same data, so the two cannot disagree.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    """An environment variable a command reads."""

    name: str
    meaning: str


@dataclass(frozen=True)
class ExitCode:
    """What a command's exit status means."""

    code: int
    meaning: str


def shown_default(action: argparse.Action) -> str | None:
    """A flag's default as a user would type it, or None when it has none worth showing
    (a switch, a flag whose absence means something its help explains)."""
    default = action.default
    if default is None or default is argparse.SUPPRESS or isinstance(default, bool):
        return None
    if isinstance(default, list | tuple):
        return " ".join(str(item) for item in default) if default else None
    return str(default)


def wrap(text: str) -> str:
    """A description as --help shows it (the formatter keeps its lines as they are)."""
    return textwrap.fill(text, width=79, break_on_hyphens=False)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's lines as written (the epilog is a list), and ends
    a flag's help with its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        default = shown_default(action)
        if text is None or default is None:
            return text
        # argparse %-formats help strings: a default holding % must not be read as a field.
        return f"{text} (default {default.replace('%', '%%')})"


def epilog(environment: Sequence[Variable], exit_codes: Sequence[ExitCode]) -> str:
    """The text below the flags in --help: the environment variables, then the exit codes."""

    def item(name: str, meaning: str) -> str:
        return textwrap.fill(
            f"{name}: {meaning}", width=79, initial_indent="  ", subsequent_indent="      "
        )

    lines = []
    if environment:
        lines += ["environment variables:", *(item(v.name, v.meaning) for v in environment), ""]
    lines += ["exit codes:", *(item(str(e.code), e.meaning) for e in exit_codes)]
    return "\n".join(lines)
