"""The CLI's last-resort handler covers ``backfill`` too: whatever nobody foresaw is one
``error: internal error: ...`` line and exit 1, the traceback only at debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import exporter.backfill.cli
from exporter import cli


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI routes every logger through its own handler: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def explode(path: Path) -> None:
    raise RuntimeError("nobody expected this\nsecond line")


@pytest.mark.parametrize("level", ["info", "debug"])
def test_an_unexpected_exception_in_backfill_is_one_error_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    level: str,
) -> None:
    monkeypatch.setattr(exporter.backfill.cli, "load_config", explode)
    argv = ["backfill", "--config.file", str(tmp_path / "x.yml"), "--start", "2d"]
    code = cli.main([*argv, "--log.level", level, "--output", str(tmp_path / "out")])
    stderr = capsys.readouterr().err
    assert code == 1
    assert stderr.splitlines()[-1] == (
        "error: internal error: RuntimeError: nobody expected this | second line"
    )
    assert ("Traceback" in stderr) == (level == "debug")
