"""kube-prometheus-stack users: the recommended path, this project's Helm chart with the
values docs/deployment.md shows, is labelled the way the stack selects; the alternative,
the values snippet, adds the same sidecar the kustomize component adds, every operator
shard scrapes its own sidecar, and the overlay in docs/deployment.md gives the
ServiceMonitor and PrometheusRule the release label the stack selects on."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.deploy_support import (
    DEPLOY,
    EXPORTER_CONTAINER,
    KUSTOMIZE,
    REPO,
    describe,
    load_yaml,
    run,
    tool,
)
from tests.deploy.helm_support import template
from tests.deploy.operator_schemas import validate
from tests.deploy.podman_support import free_port

VALUES = DEPLOY / "kube-prometheus-stack" / "values.yaml"
OPERATOR_SHARDS = 2


def prometheus_spec() -> dict[str, Any]:
    spec: dict[str, Any] = load_yaml(VALUES)["prometheus"]["prometheusSpec"]
    return spec


def component_pod() -> dict[str, Any]:
    """The pod spec the sidecar component renders in the classic example."""
    proc = run([tool("kubectl"), "kustomize", str(KUSTOMIZE / "examples" / "prometheus-sidecar")])
    assert proc.returncode == 0, describe(proc)
    [deployment] = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_the_values_container_is_the_components_container() -> None:
    [ours] = [c for c in prometheus_spec()["containers"] if c["name"] == EXPORTER_CONTAINER]
    [rendered] = [c for c in component_pod()["containers"] if c["name"] == EXPORTER_CONTAINER]
    assert ours == rendered


def test_the_values_volumes_are_the_components_but_for_the_configmap_hash() -> None:
    ours = prometheus_spec()["volumes"]
    rendered = [
        copy.deepcopy(v)
        for v in component_pod()["volumes"]
        if v["name"].startswith(f"{EXPORTER_CONTAINER}-")
    ]
    for volume in rendered:
        if "configMap" in volume:
            # kustomize appends a content hash; `kubectl create configmap` does not.
            volume["configMap"]["name"] = re.sub(r"-[a-z0-9]{10}$", "", volume["configMap"]["name"])
    assert ours == rendered


def operator_sharded(scrape_config: dict[str, Any], shard: int) -> dict[str, Any]:
    """A scrape config as prometheus-operator writes it for one of OPERATOR_SHARDS shards:
    its sharding relabelling appended (pkg/prometheus/promcfg.go,
    appendShardingRelabelingWithLabel; the $(SHARD) its config reloader fills in)."""
    config = copy.deepcopy(scrape_config)
    config.setdefault("relabel_configs", []).extend(
        [
            {
                "source_labels": ["__address__", "__tmp_hash"],
                "target_label": "__tmp_hash",
                "regex": "(.+);",
                "replacement": "$1",
                "action": "replace",
            },
            {
                "source_labels": ["__tmp_hash"],
                "target_label": "__tmp_hash",
                "modulus": OPERATOR_SHARDS,
                "action": "hashmod",
            },
            {
                "source_labels": ["__tmp_hash", "__tmp_disable_sharding"],
                "regex": f"{shard};|.+;.+",
                "action": "keep",
            },
        ]
    )
    return config


def targets(port: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(active, dropped) targets of the Prometheus on 127.0.0.1:port; None before it answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=2) as r:
            data = json.load(r)["data"]
    except OSError:
        return None
    return data["activeTargets"], data["droppedTargets"]


def active_jobs(config: dict[str, Any], directory: Path) -> set[str]:
    """The jobs with an active target in a real Prometheus started with `config`."""
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    check = run([tool("promtool"), "check", "config", str(path)])
    assert check.returncode == 0, describe(check)
    port = free_port()
    argv = [
        tool("prometheus"),
        f"--config.file={path}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        try:
            deadline = time.monotonic() + 30
            while True:
                listed = targets(port)
                if listed is not None and sum(map(len, listed)) == len(config["scrape_configs"]):
                    return {t["labels"]["job"] for t in listed[0]}
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "Prometheus listed no targets in 30s"
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_every_operator_shard_scrapes_its_own_sidecar(tmp_path: Path) -> None:
    """With the values' relabelling every shard keeps localhost:10173; without it (the
    control job) exactly one does."""
    [ours] = prometheus_spec()["additionalScrapeConfigs"]
    control = {k: v for k, v in ours.items() if k != "relabel_configs"}
    control["job_name"] = "without-tmp-disable-sharding"
    kept: dict[str, list[int]] = {ours["job_name"]: [], control["job_name"]: []}
    for shard in range(OPERATOR_SHARDS):
        directory = tmp_path / f"shard-{shard}"
        directory.mkdir()
        config = {
            "global": {"scrape_interval": "1m"},
            "scrape_configs": [operator_sharded(c, shard) for c in (ours, control)],
        }
        for job in active_jobs(config, directory):
            kept[job].append(shard)
    assert kept[ours["job_name"]] == list(range(OPERATOR_SHARDS))
    assert len(kept[control["job_name"]]) == 1


def test_the_documented_overlay_labels_monitor_and_rule_for_the_chart(tmp_path: Path) -> None:
    guide = (REPO / "docs" / "deployment.md").read_text()
    [snippet] = [
        block
        for block in re.findall(r"```yaml\n(.*?)```", guide, re.S)
        if "deploy/kubernetes/standalone" in block and "release:" in block
    ]
    relative = os.path.relpath(KUSTOMIZE / "standalone", tmp_path)
    overlay = textwrap.dedent(snippet).replace("<this repo>/deploy/kubernetes/standalone", relative)
    (tmp_path / "kustomization.yaml").write_text(overlay)
    proc = run([tool("kubectl"), "kustomize", str(tmp_path)])
    assert proc.returncode == 0, describe(proc)
    docs = {d["kind"]: d for d in yaml.safe_load_all(proc.stdout) if d}
    release = yaml.safe_load(overlay)["labels"][0]["pairs"]["release"]
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert docs[kind]["metadata"]["labels"]["release"] == release, kind
    # Selectors stay as they were: the Service still finds the pods, the monitor the Service.
    assert "release" not in docs["Service"]["spec"]["selector"]
    assert "release" not in docs["ServiceMonitor"]["spec"]["selector"]["matchLabels"]
    code, results = validate([docs["ServiceMonitor"], docs["PrometheusRule"]])
    assert code == 0, results


def test_the_recommended_chart_values_are_picked_up_by_the_stack(tmp_path: Path) -> None:
    """The guide's recommended path: this project's chart with the values it shows.
    kube-prometheus-stack (release kps) selects ServiceMonitors and PrometheusRules by
    `release: kps` and its Grafana sidecar loads ConfigMaps labelled grafana_dashboard=1."""
    guide = (REPO / "docs" / "deployment.md").read_text()
    [snippet] = [
        block for block in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "releaseLabel:" in block
    ]
    values = tmp_path / "kps-values.yaml"
    values.write_text(snippet)
    assert "helm install dce deploy/helm/datadog-cnm-exporter" in snippet
    docs = template(values)
    stack_selector = {"release": "kps"}
    for kind in ("ServiceMonitor", "PrometheusRule"):
        [resource] = [d for d in docs if d["kind"] == kind]
        assert stack_selector.items() <= resource["metadata"]["labels"].items(), kind
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    [service] = [d for d in docs if d["kind"] == "Service"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == EXPORTER_CONTAINER
    [dashboard] = [d for d in docs if d["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    [workload] = [d for d in docs if d["kind"] == "Deployment"]
    [container] = workload["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/datadog-cnm-exporter:0.1.0"
    code, results = validate([monitor, *[d for d in docs if d["kind"] == "PrometheusRule"]])
    assert code == 0, results
