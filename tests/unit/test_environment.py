"""The environment is read once, in ``exporter/cli.py`` (``environment_snapshot``), and handed
down; no other module reads ``os.environ`` or ``os.getenv``, nor a pydantic-settings class,
which would read it behind the caller's back."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import pytest

from exporter import cli

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"
ALLOWED = {"cli.py"}  # the one place
READERS = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_reads(source: str) -> list[str]:
    """Each place ``source`` reads the process environment, as ``line: what``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in READERS
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            found.append(f"{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in {"os", "pydantic_settings"}:
            for alias in node.names:
                if node.module == "pydantic_settings" or alias.name in READERS:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
    return found


def modules() -> list[Path]:
    return sorted(
        path for path in PACKAGE.rglob("*.py") if str(path.relative_to(PACKAGE)) not in ALLOWED
    )


def test_the_scan_finds_every_way_of_reading_the_environment() -> None:
    source = (
        "import os\n"
        "from os import getenv\n"
        "from pydantic_settings import BaseSettings\n"
        "a = os.environ['X']\n"
        "b = os.getenv('Y')\n"
        "c = os.environ.get('Z')\n"
        "d = os.path.join('e', 'f')\n"
    )
    assert sorted(environment_reads(source)) == [
        "2: from os import getenv",
        "3: from pydantic_settings import BaseSettings",
        "4: os.environ",
        "5: os.getenv",
        "6: os.environ",
    ]


def test_no_module_but_the_cli_reads_the_environment() -> None:
    assert len(modules()) > 40  # the scan sees the package
    reads = {
        str(path.relative_to(PACKAGE)): found
        for path in modules()
        if (found := environment_reads(path.read_text(encoding="utf-8")))
    }
    assert reads == {}


def test_the_snapshot_is_taken_once_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DD_SITE", "datadoghq.eu")
    snapshot: Mapping[str, str] = cli.environment_snapshot()
    monkeypatch.setenv("DD_SITE", "us5.datadoghq.com")
    assert snapshot["DD_SITE"] == "datadoghq.eu"
    with pytest.raises(TypeError):
        snapshot["DD_SITE"] = "x"  # type: ignore[index]
