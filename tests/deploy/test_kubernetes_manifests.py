"""Every kustomize variant renders with `kubectl kustomize`, validates with
`kubernetes-validate --strict`, and gives the exporter the hardening, probes,
Secret-as-files and ConfigMap the issue asks for. The custom resources
(ServiceMonitor, PrometheusRule), which kubernetes-validate cannot check, are
checked structurally here and their rule groups by promtool.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import (
    EXPORTER_CONTAINER,
    EXPORTER_PORT,
    KUSTOMIZE,
    KUSTOMIZE_VARIANTS,
    SHARD_ENV,
    describe,
    run,
    tool,
)

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
# The oldest Kubernetes with native sidecars on by default, and the newest
# kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29.0", None)


@functools.cache
def rendered_text(variant: str) -> str:
    proc = run([tool("kubectl"), "kustomize", str(KUSTOMIZE / variant)])
    assert proc.returncode == 0, describe(proc)
    return proc.stdout


def rendered(variant: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_text(variant)) if doc]


def pod_specs(variant: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec) for every workload of a variant."""
    return [
        (doc, doc["spec"]["template"]["spec"])
        for doc in rendered(variant)
        if doc["kind"] in WORKLOAD_KINDS
    ]


def exporter_container(pod: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """('containers' | 'initContainers', the exporter's container)."""
    found = [
        (field, container)
        for field in ("containers", "initContainers")
        for container in pod.get(field, [])
        if container["name"] == EXPORTER_CONTAINER
    ]
    assert len(found) == 1, f"exactly one exporter container, got {len(found)}"
    return found[0]


def exporter_pods() -> list[tuple[str, dict[str, Any]]]:
    return [
        (variant, pod)
        for variant in KUSTOMIZE_VARIANTS
        for _, pod in pod_specs(variant)
        if any(
            c["name"] == EXPORTER_CONTAINER
            for c in pod.get("containers", []) + pod.get("initContainers", [])
        )
    ]


@pytest.mark.parametrize("variant", KUSTOMIZE_VARIANTS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=lambda v: v or "latest")
def test_variant_renders_and_validates_strictly(
    variant: str, version: str | None, tmp_path: Path
) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(rendered_text(variant))
    argv = [tool("kubernetes-validate"), "--strict", "--quiet"]
    if version:
        argv += ["--kubernetes-version", version]
    proc = run([*argv, str(out)])
    assert proc.returncode == 0, describe(proc)
    assert "ERROR" not in proc.stdout + proc.stderr, describe(proc)


@pytest.mark.parametrize("variant", KUSTOMIZE_VARIANTS)
def test_no_variant_hard_codes_a_namespace(variant: str) -> None:
    """`kubectl apply -n NS -k` or an overlay's `namespace:` decides where it goes."""
    assert [d["metadata"]["name"] for d in rendered(variant) if "namespace" in d["metadata"]] == []


def test_every_variant_with_a_workload_runs_the_exporter() -> None:
    variants = {variant for variant, _ in exporter_pods()}
    assert variants == set(KUSTOMIZE_VARIANTS) - {"base"}


def test_classic_sidecar_is_an_extra_container_next_to_prometheus() -> None:
    [(_, pod)] = pod_specs("examples/prometheus-sidecar")
    names = [c["name"] for c in pod["containers"]]
    assert {"prometheus", EXPORTER_CONTAINER} <= set(names)
    assert exporter_container(pod)[0] == "containers"


def test_native_sidecar_is_an_init_container_that_restarts_always() -> None:
    [(workload, pod)] = pod_specs("examples/prometheus-native-sidecar")
    assert workload["kind"] == "StatefulSet"
    field, container = exporter_container(pod)
    assert field == "initContainers"
    assert container["restartPolicy"] == "Always"
    assert "prometheus" in [c["name"] for c in pod["containers"]]


@pytest.mark.parametrize(
    "variant", ["examples/prometheus-sidecar", "examples/prometheus-native-sidecar"]
)
def test_sidecar_prometheus_scrapes_the_exporter_on_localhost(variant: str) -> None:
    config_maps = [
        d for d in rendered(variant) if d["kind"] == "ConfigMap" and "prometheus.yml" in d["data"]
    ]
    [config_map] = config_maps
    prometheus = yaml.safe_load(config_map["data"]["prometheus.yml"])
    [job] = [j for j in prometheus["scrape_configs"] if j["job_name"] == "datadog-cnm-exporter"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"localhost:{EXPORTER_PORT}"]


@pytest.mark.parametrize(
    "variant", ["examples/prometheus-sidecar", "examples/prometheus-native-sidecar"]
)
def test_sidecar_prometheus_config_passes_promtool(variant: str, tmp_path: Path) -> None:
    [config_map] = [
        d for d in rendered(variant) if d["kind"] == "ConfigMap" and "prometheus.yml" in d["data"]
    ]
    path = tmp_path / "prometheus.yml"
    path.write_text(config_map["data"]["prometheus.yml"])
    proc = run([tool("promtool"), "check", "config", str(path)])
    assert proc.returncode == 0, describe(proc)


def test_exporter_container_hardening_probes_and_resources() -> None:
    for variant, pod in exporter_pods():
        _, container = exporter_container(pod)
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True, variant
        assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] != 0, variant
        assert sc["readOnlyRootFilesystem"] is True, variant
        assert sc["allowPrivilegeEscalation"] is False, variant
        assert sc["capabilities"]["drop"] == ["ALL"], variant
        assert "add" not in sc["capabilities"], variant
        assert sc["seccompProfile"]["type"] == "RuntimeDefault", variant
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (variant, kind)
        assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy", variant
        assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready", variant
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] == EXPORTER_PORT, (variant, probe)
        assert [p["containerPort"] for p in container["ports"]] == [EXPORTER_PORT], variant
        assert not container["image"].endswith(":latest"), variant


def test_keys_come_from_the_secret_as_files_and_config_from_the_configmap() -> None:
    for variant, pod in exporter_pods():
        _, container = exporter_container(pod)
        env = {e["name"]: e for e in container["env"]}
        assert "DD_API_KEY" not in env and "DD_APP_KEY" not in env, "keys only as files"
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert not any("subPath" in m for m in mounts.values()), (
            "subPath mounts never see Secret/ConfigMap updates"
        )
        [keys] = [name for name, v in volumes.items() if "secret" in v and name in mounts]
        assert volumes[keys]["secret"]["secretName"] == "datadog-cnm-exporter-keys"
        key_dir = mounts[keys]["mountPath"]
        assert mounts[keys]["readOnly"] is True
        assert env["DD_API_KEY_FILE"]["value"] == f"{key_dir}/api-key", variant
        assert env["DD_APP_KEY_FILE"]["value"] == f"{key_dir}/app-key", variant

        [config] = [name for name, v in volumes.items() if "configMap" in v and name in mounts]
        config_map_name = volumes[config]["configMap"]["name"]
        generated = {
            d["metadata"]["name"]: d for d in rendered(variant) if d["kind"] == "ConfigMap"
        }
        assert config_map_name in generated, f"{variant}: {config_map_name} is not in the output"
        assert config_map_name.startswith("datadog-cnm-exporter-config-"), "hashed name"
        config_file = f"{mounts[config]['mountPath']}/config.yml"
        assert f"--config.file={config_file}" in container["args"], variant
        exporter_config = yaml.safe_load(generated[config_map_name]["data"]["config.yml"])
        assert {"datadog", "connections"} <= set(exporter_config)


def _comparable(container: dict[str, Any]) -> dict[str, Any]:
    container = copy.deepcopy(container)
    container.pop("restartPolicy", None)
    container["env"] = [e for e in container["env"] if e["name"] not in SHARD_ENV]
    for port in container["ports"]:
        port.pop("name", None)
    return container


def test_exporter_container_is_the_same_in_every_variant() -> None:
    """The three hand-written copies (standalone, sidecar, native sidecar) never drift, and
    the sharded variant only adds its shard variables."""
    containers = {
        variant: _comparable(exporter_container(pod)[1]) for variant, pod in exporter_pods()
    }
    reference = containers["standalone"]
    for variant, container in containers.items():
        assert container == reference, variant


def test_standalone_service_and_servicemonitor_select_the_exporter() -> None:
    docs = rendered("standalone")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    [deployment] = by_kind["Deployment"]
    [service] = by_kind["Service"]
    [monitor] = by_kind["ServiceMonitor"]
    assert deployment["spec"]["replicas"] == 1, "each replica spends the API rate limit"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    [service_port] = service["spec"]["ports"]
    assert service_port["targetPort"] in port_names

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    # Both in whatever namespace they are applied to (no variant names one).
    assert "namespace" not in monitor["metadata"] and "namespace" not in service["metadata"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
    assert set(monitor["spec"]) <= {"selector", "endpoints", "jobLabel"}
    # The shipped alerts select job="datadog-cnm-exporter": the operator sets
    # job to the Service name unless jobLabel says otherwise.
    assert "jobLabel" not in monitor["spec"]
    assert service["metadata"]["name"] == "datadog-cnm-exporter"


def test_standalone_prometheusrule_structure_and_promtool(tmp_path: Path) -> None:
    [rule] = [d for d in rendered("standalone") if d["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(rule["spec"]) == {"groups"}
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r)
            assert set(r) <= {"alert", "record", "expr", "for", "labels", "annotations"}
    rules_file = tmp_path / "prometheusrule-groups.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    proc = run([tool("promtool"), "check", "rules", str(rules_file)])
    assert proc.returncode == 0, describe(proc)


def test_standalone_pod_does_not_mount_a_service_account_token() -> None:
    [(_, pod)] = pod_specs("standalone")
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
