"""Render deploy/prometheus/rules/*.yml into the prometheus-operator PrometheusRule.

The plain rule files are the source of truth; the PrometheusRule of the
standalone kustomize variant is generated from them so the two never drift
(tests/deploy/test_prometheus_rules.py fails when they differ).

    python deploy/prometheus/render_prometheusrule.py          # rewrite the file
    python deploy/prometheus/render_prometheusrule.py --check  # exit 1 if stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULE_FILES = (HERE / "rules" / "recording.yml", HERE / "rules" / "alerting.yml")
TARGET = HERE.parent / "kubernetes" / "standalone" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules/{recording,alerting}.yml by
# deploy/prometheus/render_prometheusrule.py. Do not edit: edit the rule files
# and re-run the script.
#
# prometheus-operator only loads PrometheusRules its Prometheus' ruleSelector
# matches; add the label it expects (e.g. `release: <helm release>` for
# kube-prometheus-stack) with a kustomize `labels:` entry.
"""


class _BlockDumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings (PromQL) as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def rule_groups() -> list[dict[str, Any]]:
    """All rule groups of the plain rule files, in file order."""
    groups: list[dict[str, Any]] = []
    for path in RULE_FILES:
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def render() -> str:
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "datadog-cnm-exporter"},
        "spec": {"groups": rule_groups()},
    }
    body = yaml.dump(resource, Dumper=_BlockDumper, sort_keys=False, width=1000)
    return HEADER + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
