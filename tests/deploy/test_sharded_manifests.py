"""The sharded variant: a StatefulSet whose replicas learn their shard from the pod, a
headless Service, and a ServiceMonitor that scrapes every replica."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

from exporter.sharding import index_from_pod_name
from tests.deploy.deploy_support import EXPORTER_CONTAINER, KUSTOMIZE, describe, run, tool


def rendered() -> dict[str, list[dict[str, Any]]]:
    proc = run([tool("kubectl"), "kustomize", str(KUSTOMIZE / "sharded")])
    assert proc.returncode == 0, describe(proc)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in yaml.safe_load_all(proc.stdout):
        if doc:
            by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def test_statefulset_replaces_the_deployment_and_tells_each_pod_the_shard_count() -> None:
    docs = rendered()
    assert "Deployment" not in docs, "one workload only: a Deployment would poll everything"
    [statefulset] = docs["StatefulSet"]
    spec = statefulset["spec"]
    assert spec["replicas"] >= 2
    assert spec["podManagementPolicy"] == "Parallel"
    [container] = [
        c for c in spec["template"]["spec"]["containers"] if c["name"] == EXPORTER_CONTAINER
    ]
    env = {e["name"]: e for e in container["env"]}
    # The count is copied from spec.replicas, so the two cannot disagree.
    assert env["EXPORTER_SHARD_COUNT"]["value"] == str(spec["replicas"])
    fields = {
        name: env[name]["valueFrom"]["fieldRef"]["fieldPath"]
        for name in ("EXPORTER_SHARD_INDEX", "POD_NAME")
    }
    assert fields == {
        "EXPORTER_SHARD_INDEX": "metadata.labels['apps.kubernetes.io/pod-index']",
        "POD_NAME": "metadata.name",
    }
    # StatefulSet pods are named <statefulset>-<ordinal>: what the exporter falls back to.
    name = statefulset["metadata"]["name"]
    assert [index_from_pod_name(f"{name}-{i}") for i in range(spec["replicas"])] == list(
        range(spec["replicas"])
    )


def test_headless_service_governs_the_statefulset_and_the_monitor_scrapes_it() -> None:
    docs = rendered()
    [statefulset] = docs["StatefulSet"]
    [service] = docs["Service"]
    [monitor] = docs["ServiceMonitor"]
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # A ServiceMonitor scrapes every endpoint (pod) behind the Service, i.e. every replica;
    # the job label stays the Service name the shipped alerts select on.
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert service["metadata"]["name"] == "datadog-cnm-exporter"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]


def test_disruptions_take_one_shard_at_a_time() -> None:
    docs = rendered()
    [budget] = docs["PodDisruptionBudget"]
    [statefulset] = docs["StatefulSet"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["metadata"].get("namespace") == statefulset["metadata"].get("namespace")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_an_overlay_changes_the_shard_count_the_way_the_docs_say(tmp_path: Path) -> None:
    """The overlay in docs/scaling.md: replicas and the replacement keep the count in step."""
    guide = (KUSTOMIZE.parents[1] / "docs" / "scaling.md").read_text()
    [snippet] = [
        block
        for block in re.findall(r"```yaml\n(.*?)```", guide, re.S)
        if "deploy/kubernetes/sharded" in block
    ]
    relative = os.path.relpath(KUSTOMIZE / "sharded", tmp_path)
    overlay = textwrap.dedent(snippet).replace("<this repo>/deploy/kubernetes/sharded", relative)
    (tmp_path / "kustomization.yaml").write_text(overlay)
    proc = run([tool("kubectl"), "kustomize", str(tmp_path)])
    assert proc.returncode == 0, describe(proc)
    [statefulset] = [d for d in yaml.safe_load_all(proc.stdout) if d["kind"] == "StatefulSet"]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert statefulset["spec"]["replicas"] == 4
    assert env["EXPORTER_SHARD_COUNT"] == "4"
