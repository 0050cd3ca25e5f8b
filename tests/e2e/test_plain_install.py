"""A plain install, as a user makes one: ``pip install`` of a copy of the source (not
editable) into a fresh venv, run from a directory where no checkout is importable. The one
distribution ships both packages, so ``--demo`` serves every demo query from the installed
simulator, and ``python -m simulator`` runs it on its own."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import http_get, parse_metrics, running, wait_for

# Installing pulls the dependencies from the package index: minutes on a cold cache.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
# Not part of a source tree a user installs from: caches, build output, node packages.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "__pycache__", "*.egg-info", "build", "dist", "site",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
)  # fmt: skip


def clean_env() -> dict[str, str]:
    """No PYTHONPATH to reach the checkout, no Datadog keys (the demo brings its own)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DD_", "PYTHON")) and k != "VIRTUAL_ENV"
    }


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project installed from a copy of the source, the copy removed."""
    root = tmp_path_factory.mktemp("plain-install")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         str(source)],
        cwd=root, env=clean_env(), capture_output=True, text=True, timeout=800,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.rmtree(source)
    return venv


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """An empty working directory: nothing importable from it."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def test_both_packages_are_installed_in_the_venv(venv: Path, elsewhere: Path) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import exporter, simulator; print(exporter.__file__); print(simulator.__file__)"],
        cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = [Path(line) for line in result.stdout.splitlines()]
    assert [file.parent.name for file in files] == ["exporter", "simulator"]
    assert all(file.is_relative_to(venv) for file in files), files


def test_demo_serves_every_demo_query_up(venv: Path, elsewhere: Path) -> None:
    cli = str(venv / "bin" / "datadog-cnm-exporter")
    check = subprocess.run(
        [cli, "--demo", "--config.check"],
        cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    # The demo's queries, as its own --config.check lists them: "  collector  name  every 15s".
    expected = set(re.findall(r"^  (\S+)\s+(\S+)\s+every ", check.stdout, re.MULTILINE))
    assert len(expected) >= 5, check.stdout

    argv = [cli, "--demo", "--web.listen-address", "127.0.0.1:0"]
    with running(argv, elsewhere / "exporter.log", env=clean_env(), cwd=elsewhere) as exporter:
        port = exporter.wait_for_output(r"msg=listening .*port=(\d+)", timeout=60).group(1)
        metrics = f"http://127.0.0.1:{port}/metrics"

        def up() -> dict[tuple[str, str], float]:
            return {
                (dict(labels)["collector"], dict(labels)["query"]): value
                for (name, labels), value in parse_metrics(http_get(metrics).decode()).items()
                if name == "datadog_exporter_up"
            }

        def all_up() -> bool:
            return set(up()) == expected and all(value == 1 for value in up().values())

        wait_for(all_up, timeout=90, interval=1, what=f"every demo query up on {metrics}")
        assert "Traceback" not in exporter.output()
    assert exporter.popen.returncode == 0, exporter.output()  # SIGTERM: a clean stop


def test_python_dash_m_simulator_runs_the_installed_simulator(venv: Path, elsewhere: Path) -> None:
    """The documented way to run it on its own (docs/simulator.md), from the install."""
    argv = [str(venv / "bin" / "python"), "-m", "simulator", "--listen", "127.0.0.1:0"]
    with running(argv, elsewhere / "simulator.log", env=clean_env(), cwd=elsewhere) as sim:
        url = sim.wait_for_output(r"listening on (http://127\.0\.0\.1:\d+)").group(1)
        answer = http_get(url + "/api/v1/validate", headers={"DD-API-KEY": "sim-api-key"})
        assert json.loads(answer) == {"valid": True}
    assert sim.popen.returncode == 0, sim.output()
