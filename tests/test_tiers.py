"""A plain ``pytest`` is the quick tier: the slow tiers (e2e, soak, deploy, container, fuzz)
are left out unless asked for, and ``-m ''`` (the README's command, CI's) runs them all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOW = [
    "tests/e2e",
    "tests/deploy",
    "tests/integration/test_fuzz_http.py",
    "tests/integration/test_benchmark.py",
]
QUICK = "tests/unit/test_durations.py"


def collected(*args: str) -> list[str]:
    """The node ids pytest would run, with the project's own configuration."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 5), result.stdout + result.stderr  # 5: none selected
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_a_plain_pytest_runs_the_quick_tier_and_no_slow_test() -> None:
    ids = collected(QUICK, *SLOW)
    assert ids and all(node.startswith(QUICK) for node in ids), ids


def test_every_tier_runs_with_an_empty_marker_expression() -> None:
    ids = collected("-m", "", QUICK, *SLOW)
    for path in SLOW:
        assert any(node.startswith(path) for node in ids), path
    assert any(node.startswith("tests/deploy/test_image.py") for node in ids)
