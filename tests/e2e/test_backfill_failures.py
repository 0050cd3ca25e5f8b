"""Backfill's own failures end in one ``error:`` line with a documented exit code, never a
traceback: a disk that fills (a real ENOSPC on a tiny tmpfs), an output directory on a
read-only file system or a path that is a file, a usage error (which leaves the output
directory untouched). Resuming after a full disk still gives the same files.

Mounting needs root (CI runs as root); each mount is the test's own and is unmounted in a
``finally``.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .backfill_support import Simulators, om_files, run_backfill

pytestmark = pytest.mark.e2e

EXIT_USAGE = 2
EXIT_OUTPUT = 4  # documented in exporter/backfill/cli.py and docs/backfill.md
CONFIG = """
datadog: {timeout: 5s}
connections:
  - {name: total, interval: 30m, window: 5m}
dns:
  - {name: names, interval: 30m, window: 5m}
"""


def three_days(tmp_path: Path) -> list[str]:
    path = tmp_path / "small.yml"
    path.write_text(CONFIG)
    end = math.floor((time.time() - 4 * 3600) / 600) * 600
    return ["--config.file", str(path), "--start", str(end - 3 * 86400), "--end", str(end)]


@contextmanager
def tmpfs(mount_point: Path, options: str) -> Iterator[Path]:
    """A tmpfs of the test's own at ``mount_point`` (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run's one ``error:`` line (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_full_disk_is_one_error_line_and_the_rerun_gives_the_same_files(
    tmp_path: Path, simulator: Simulators
) -> None:
    url = simulator()
    args = three_days(tmp_path)
    reference = tmp_path / "reference"
    complete = run_backfill(url, *args, "--output", str(reference))
    assert complete.returncode == 0, complete.stderr
    assert len(om_files(reference)) == 8

    with tmpfs(tmp_path / "disk", "size=256k") as disk:
        out = disk / "out"
        full = run_backfill(url, *args, "--output", str(out))
        assert full.returncode == EXIT_OUTPUT, full.stderr
        line = one_error_line(full)
        assert f"cannot write --output {out}" in line
        assert "No space left on device" in line or "disk is full" in line, line
        assert "rerun the same command" in line
        assert len(om_files(out)) < 8  # it did fill up on the way

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = run_backfill(url, *args, "--output", str(out))
        assert resumed.returncode == 0, resumed.stderr
        assert "already recorded (resuming)" in resumed.stderr
        assert om_files(out) == om_files(reference)
        assert not list(out.glob("*.partial"))


def test_an_output_directory_on_a_read_only_file_system_is_one_error_line(
    tmp_path: Path, simulator: Simulators
) -> None:
    url = simulator()
    with tmpfs(tmp_path / "ro", "ro,size=64k") as read_only:
        result = run_backfill(url, *three_days(tmp_path), "--output", str(read_only / "out"))
    assert result.returncode == EXIT_OUTPUT, result.stderr
    assert one_error_line(result) == (
        f"error: cannot write --output {read_only / 'out'}: Read-only file system; windows "
        "recorded so far are kept: make room or fix the directory, then rerun the same command"
    )


@pytest.mark.parametrize("under", [False, True], ids=["is-a-file", "under-a-file"])
def test_an_output_path_that_is_a_file_is_one_error_line(
    tmp_path: Path, simulator: Simulators, under: bool
) -> None:
    url = simulator()
    a_file = tmp_path / "taken"
    a_file.write_text("not a directory\n")
    output = a_file / "out" if under else a_file
    result = run_backfill(url, *three_days(tmp_path), "--output", str(output))
    assert result.returncode == EXIT_OUTPUT, result.stderr
    line = one_error_line(result)
    assert str(output) in line and "ot a directory" in line, line
    assert a_file.read_text() == "not a directory\n"


def test_a_usage_error_leaves_the_output_directory_for_the_corrected_command(
    tmp_path: Path, simulator: Simulators
) -> None:
    """--start after --end is refused (exit 2) before anything is written, so the corrected
    command runs in the same --output."""
    url = simulator()
    args = three_days(tmp_path)
    start, end = args[args.index("--start") + 1], args[args.index("--end") + 1]
    swapped = [*args[:2], "--start", end, "--end", start]
    out = tmp_path / "out"
    refused = run_backfill(url, *swapped, "--output", str(out))
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "must be before --end" in one_error_line(refused)
    assert not out.exists()
    corrected = run_backfill(url, *args, "--output", str(out))
    assert corrected.returncode == 0, corrected.stderr
    assert len(om_files(out)) == 8
