"""A hanging test fails at the suite's timeout (pytest-timeout) instead of at CI's limit."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HANGING = """
import asyncio
import time


async def test_awaits_forever() -> None:
    await asyncio.Event().wait()


def test_sleeps_forever() -> None:
    time.sleep(3600)


def test_runs_after_them() -> None:
    pass
"""


def test_the_default_timeout_is_minutes() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 60 <= options["timeout"] <= 600


def test_a_hanging_test_fails_at_the_timeout_and_the_run_goes_on(tmp_path: Path) -> None:
    """The project's own pytest configuration, with the timeout shortened to keep this quick."""
    (tmp_path / "test_hanging.py").write_text(HANGING)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-o",
            "timeout=2",
            str(tmp_path / "test_hanging.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("Timeout (>2.0s) from pytest-timeout") >= 2, result.stdout
    assert "2 failed, 1 passed" in result.stdout, result.stdout
