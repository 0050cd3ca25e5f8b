"""prometheus-operator's CRD schemas, through npm @kubernetes-models/prometheus-operator.

The package is installed from the lock file into tests/deploy/crds/node_modules
(`.ci/run` does it; the first test that needs it too, when it is missing).
"""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

from tests.deploy.deploy_support import describe, missing, run, tool

CRDS = Path(__file__).resolve().parent / "crds"


@cache
def validator() -> list[str]:
    node = tool("node")
    if not (CRDS / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            missing("npm is not installed")
            raise AssertionError("unreachable")
        proc = run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=CRDS, timeout=300
        )
        assert proc.returncode == 0, describe(proc)
    return [node, str(CRDS / "validate.mjs")]


def validate(manifests: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    proc = run(validator(), cwd=CRDS, stdin=json.dumps(manifests))
    assert proc.stderr == "", describe(proc)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]
