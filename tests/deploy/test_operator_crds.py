"""The ServiceMonitor and PrometheusRule pass prometheus-operator's own CRD schemas
(npm @kubernetes-models/prometheus-operator), which kubernetes-validate does not know.

Its validators check types, required fields, enums and patterns (durations, for
instance); like the API server they let unknown fields through, which
test_kubernetes_manifests.py checks instead.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import KUSTOMIZE, describe, run, tool
from tests.deploy.operator_schemas import validate

VARIANTS = ("standalone", "sharded")
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def operator_resources(variant: str) -> list[dict[str, Any]]:
    proc = run([tool("kubectl"), "kustomize", str(KUSTOMIZE / variant)])
    assert proc.returncode == 0, describe(proc)
    return [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] in OPERATOR_KINDS]


@pytest.mark.parametrize("variant", VARIANTS)
def test_servicemonitor_and_prometheusrule_match_the_operators_schemas(variant: str) -> None:
    manifests = operator_resources(variant)
    assert {m["kind"] for m in manifests} == OPERATOR_KINDS
    code, results = validate(manifests)
    assert code == 0 and all(r["error"] is None for r in results), results
    assert len(results) == len(manifests)


def test_the_schemas_reject_what_the_operator_would() -> None:
    """The validator is not a yes-man: a ServiceMonitor with a malformed interval and a
    rule with a malformed `for:` are refused, naming the field."""
    [monitor] = [m for m in operator_resources("standalone") if m["kind"] == "ServiceMonitor"]
    [rule] = [m for m in operator_resources("standalone") if m["kind"] == "PrometheusRule"]
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    rule["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    code, results = validate([monitor, rule])
    assert code == 1
    assert "endpoints/0/interval" in results[0]["error"]
    assert "rules/0/for" in results[1]["error"]
