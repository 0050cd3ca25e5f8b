"""The code base stays ruff- and mypy-clean and keeps its layers (CI runs this with the rest of
the suite)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", "exporter", "simulator", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied() -> None:
    result = run("ruff", "format", "--check", "exporter", "simulator", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def blocks(source: str) -> Iterator[Any]:
    """radon's blocks of a module as its ``cc`` command lists them: functions, classes and
    their methods."""
    for block in cc_visit(source):
        yield block
        yield from getattr(block, "methods", ())


def test_no_block_is_more_complex_than_grade_c() -> None:
    """radon grades a cyclomatic complexity above 20 as D: such a block is split, not kept."""
    worse = [
        f"{path.relative_to(ROOT)}:{block.lineno} {block.fullname} "
        f"{cc_rank(block.complexity)} ({block.complexity})"
        for package in ("exporter", "simulator")
        for path in sorted((ROOT / package).rglob("*.py"))
        for block in blocks(path.read_text(encoding="utf-8"))
        if cc_rank(block.complexity) > "C"
    ]
    assert worse == []


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """The contracts of pyproject.toml over the package in ``cwd`` (it goes first on the path)."""
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_imports_follow_the_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_an_import_against_the_layers_is_caught(tmp_path: Path) -> None:
    """The contracts bite: the configuration reaching up into the scheduler or a module
    without a place in the layers, the simulator using the exporter, the wiring starting the
    simulator, the simulator's endpoints taking a type from its state (the cycle the leaf
    module `simulator.endpoint` broke: type-checking imports count too)."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "exporter", tmp_path / "exporter")
    shutil.copytree(ROOT / "simulator", tmp_path / "simulator")
    assert lint_imports(tmp_path).returncode == 0
    with (tmp_path / "exporter" / "config" / "accounts.py").open("a") as module:
        module.write("\nfrom .. import scheduler  # noqa\n")
    with (tmp_path / "simulator" / "state.py").open("a") as module:
        module.write("\nfrom exporter import exposition  # noqa\n")
    with (tmp_path / "simulator" / "endpoints.py").open("a") as module:
        module.write(
            "\nfrom typing import TYPE_CHECKING  # noqa\n"
            "if TYPE_CHECKING:\n    from simulator.state import SimulatorState  # noqa\n"
        )
    with (tmp_path / "exporter" / "app.py").open("a") as module:
        module.write("\nimport simulator  # noqa\n")
    (tmp_path / "exporter" / "unplaced.py").write_text('"""Not in any layer."""\n')
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "exporter.config.accounts -> exporter.scheduler" in result.stdout
    assert "simulator.state -> exporter.exposition" in result.stdout
    assert "exporter.unplaced" in result.stdout
    assert "exporter.app -> simulator" in result.stdout
    assert "simulator.endpoints -> simulator.state" in result.stdout
    assert "4 broken" in result.stdout, result.stdout
