"""Shared helpers for the deployment-artefact tests: paths and real tools.

Tool policy: a missing tool skips the test on a developer machine, but when
the environment variable CI is "true" it FAILS the test instead, so CI can
never go green by silently skipping the real checks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUSTOMIZE = DEPLOY / "kubernetes"
RULES_DIR = DEPLOY / "prometheus" / "rules"
RULE_FILES = (RULES_DIR / "recording.yml", RULES_DIR / "alerting.yml")
PROMTOOL_TESTS = sorted((REPO / "tests" / "deploy" / "promtool").glob("*_test.yml"))
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARD = DEPLOY / "grafana" / "datadog-cnm-exporter.json"
RUNBOOK = DEPLOY / "runbook.md"

# Every kustomization users can build, relative to deploy/kubernetes.
KUSTOMIZE_VARIANTS = (
    "base",
    "standalone",
    "sharded",
    "examples/prometheus-sidecar",
    "examples/prometheus-native-sidecar",
)

EXPORTER_CONTAINER = "datadog-cnm-exporter"
# What the sharded variant adds to the exporter container (its place among the replicas).
SHARD_ENV = ("EXPORTER_SHARD_COUNT", "EXPORTER_SHARD_INDEX", "POD_NAME")
EXPORTER_PORT = 10173


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(reason: str) -> None:
    """Skip locally, fail in CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: missing tools fail instead of skipping)")
    pytest.skip(reason)


def tool(name: str) -> str:
    """Absolute path of a command-line tool, from PATH or this interpreter's venv."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        missing(f"{name} is not installed")
        raise AssertionError("unreachable")
    return found


def run(
    argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing text output; never raises on a non-zero exit."""
    return subprocess.run(
        list(argv),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the shipped rule files."""
    return [
        rule
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


# --- PromQL metric-name extraction -------------------------------------------

_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "atan2",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_COMMENT = re.compile(r"#[^\n]*")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels excluded).

    >>> sorted(metric_names('sum by (job) (rate(a_total{x="y"}[5m])) / on (job) b > 0'))
    ['a_total', 'b']
    """
    text = _STRING.sub('""', expr)
    text = _COMMENT.sub("", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names
