"""The benchmark still runs end to end (at a tiny size; its figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The whole benchmark as a subprocess (about 20 s): end to end, not a quick check.
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent
TINY = [
    *("--rows", "20", "--queries", "1,2", "--scrapes", "1", "--repeats", "1"),
    *("--universe", "300", "--many", "5x30"),
]
MANY = "5 x 30 (many small queries, all due at once)"


def test_benchmark_prints_exporter_and_reference_figures_for_every_size() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", *TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ")]
    measures = {(cells[0].strip(), cells[2].strip()): cells for cells in rows}
    for size in ("20 x 1", "20 x 2"):
        for measure in (
            "poll-to-publish, µs/sample wall (CPU)",
            "/metrics plain, ms median / worst",
            "/metrics gzip, ms median / worst",
            "resident memory, bytes/sample",
            "largest event-loop stall in a poll, ms",
        ):
            cells = measures[(size, measure)]
            exporter, reference, ratio = (cell.strip() for cell in cells[3:6])
            assert exporter != "-" and reference != "-" and ratio.endswith("x"), cells
    for measure in (
        "API call returned to query served, s median / worst",
        "CPU per publish, ms median / worst (publishes over 2 ms)",
        "bare aiohttp, same gzip bytes, ms (gzip / bare)",
    ):
        assert measures[(MANY, measure)][3].strip() != "-", measures[(MANY, measure)]
    assert measures[(MANY, "queries on /metrics")][3].strip() == "30"
    assert "machine:" in result.stdout
