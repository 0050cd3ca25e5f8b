"""The Helm chart deploy/helm/datadog-cnm-exporter, with the real helm CLI: every
ci/*-values.yaml lints strictly, renders, validates with kubernetes-validate --strict and
the operator's schemas; the values schema refuses what the chart does not know; the
PrometheusRule and the dashboard are the shipped ones; the chart's version is the
package's; NOTES.txt says what is true; `helm package` holds the chart and nothing else.

The pods themselves run in test_helm_pods.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import exporter
from tests.deploy.deploy_support import (
    DASHBOARD,
    DEPLOY,
    EXPORTER_CONTAINER,
    EXPORTER_PORT,
    KUSTOMIZE,
    RULES_DIR,
    describe,
    load_yaml,
    run,
    tool,
)
from tests.deploy.helm_support import (
    CHART,
    CI_VALUES,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    by_kind,
    helm_run,
    install_dry_run,
    load_values,
    notes,
    one,
    template,
    template_text,
)
from tests.deploy.operator_schemas import validate
from tests.deploy.podman_support import SHIPPED_EXPORTER_IMAGE

FULLNAME = f"{RELEASE}-datadog-cnm-exporter"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
DEFAULT = CHART / "ci" / "default-values.yaml"
EXISTING_SECRET = CHART / "ci" / "existing-secret-values.yaml"
SHARDED = CHART / "ci" / "sharded-values.yaml"
WEB_CONFIG = CHART / "ci" / "web-config-values.yaml"
NETWORK_POLICY = CHART / "ci" / "network-policy-values.yaml"
# Values holding Kubernetes' or the operator's own types (or the exporter's
# configuration): the chart passes them through and does not close them.
OPEN_VALUES = {
    "global",
    "config",
    "podSecurityContext",
    "securityContext",
    "resources",
    "affinity",
    "nodeSelector",
    "podAnnotations",
    "podLabels",
    "service.annotations",
    "service.labels",
    "serviceAccount.annotations",
    "serviceMonitor.additionalLabels",
    "serviceMonitor.tlsConfig",
    "serviceMonitor.basicAuth",
    "prometheusRule.additionalLabels",
    "dashboard.labels",
    "dashboard.annotations",
}


def ids(path: Path) -> str:
    return path.name.removesuffix("-values.yaml")


def workload(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] in WORKLOAD_KINDS]
    return found


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = workload(docs)["spec"]["template"]["spec"]
    return spec


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any]
    [found] = pod_spec(docs)["containers"]
    assert found["name"] == EXPORTER_CONTAINER
    return found


def env(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(docs)["env"]}


def exporter_config_map(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [d for d in by_kind(docs, "ConfigMap") if "config.yml" in d["data"]]
    return found


def rule_groups_of_the_rule_files() -> list[dict[str, Any]]:
    """Whatever deploy/prometheus/rules holds now, file by file in name order."""
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        groups.extend(load_yaml(path)["groups"])
    return groups


# --- Chart.yaml ---------------------------------------------------------------


def test_chart_version_and_app_version_are_the_package_version() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["version"] == exporter.__version__
    assert chart["appVersion"] == exporter.__version__


def test_one_version_everywhere() -> None:
    """exporter.__version__ is the one version source: the chart, and the tag of every
    image of ours the kustomize manifests and the kube-prometheus-stack values name."""
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["version"] == chart["appVersion"] == exporter.__version__
    references = [
        (path, match)
        for path in sorted(DEPLOY.rglob("*.yaml"))
        if CHART not in path.parents
        for match in re.findall(rf"{re.escape(SHIPPED_EXPORTER_IMAGE)}(\S*)", path.read_text())
    ]
    assert len(references) >= 4, references
    assert {tag for _, tag in references} == {f":{exporter.__version__}"}, references


def test_chart_yaml_carries_what_the_review_guidelines_ask() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.25.0-0"
    assert chart["type"] == "application"
    assert chart["description"] and chart["home"].startswith("https://")
    assert chart["sources"] and chart["maintainers"]
    assert chart["annotations"]["artifacthub.io/license"] == "Apache-2.0"
    links = yaml.safe_load(chart["annotations"]["artifacthub.io/links"])
    assert {link["name"] for link in links} >= {"Documentation", "Source"}


# --- lint, render, validate -------------------------------------------------


def test_every_shape_has_a_ci_values_file() -> None:
    assert {ids(p) for p in CI_VALUES} == {
        "default",
        "existing-secret",
        "sharded",
        "web-config",
        "network-policy",
    }


@pytest.mark.parametrize("values", CI_VALUES, ids=ids)
def test_lints_strictly(values: Path) -> None:
    proc = helm_run("lint", "--strict", "--values", str(values), str(CHART))
    assert proc.returncode == 0, describe(proc)
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, describe(proc)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=lambda v: v or "latest")
@pytest.mark.parametrize("values", CI_VALUES, ids=ids)
def test_renders_and_validates_strictly(values: Path, version: str | None, tmp_path: Path) -> None:
    proc = template_text(values, kube_version=version)
    assert proc.returncode == 0, describe(proc)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(proc.stdout)
    argv = [tool("kubernetes-validate"), "--strict", "--quiet"]
    if version:
        argv += ["--kubernetes-version", version]
    check = run([*argv, str(rendered)])
    assert check.returncode == 0, describe(check)
    assert "ERROR" not in check.stdout + check.stderr, describe(check)
    kinds = {d["kind"] for d in yaml.safe_load_all(proc.stdout) if d}
    assert kinds & WORKLOAD_KINDS and "Service" in kinds


def operator_kinds(values: Path) -> set[str]:
    """The operator's kinds a values file turns on."""
    loaded = load_values(values)
    return {
        kind
        for kind, key in (
            ("ServiceMonitor", "serviceMonitor"),
            ("PrometheusRule", "prometheusRule"),
        )
        if loaded.get(key, {}).get("enabled")
    }


@pytest.mark.parametrize("values", [v for v in CI_VALUES if operator_kinds(v)], ids=ids)
def test_operator_resources_match_the_operators_schemas(values: Path) -> None:
    manifests = [d for d in template(values) if d["kind"] in OPERATOR_KINDS]
    assert {m["kind"] for m in manifests} == operator_kinds(values)
    code, results = validate(manifests)
    assert code == 0 and all(r["error"] is None for r in results), results
    assert len(results) == len(manifests)


def test_a_too_old_kubernetes_is_refused() -> None:
    proc = template_text(DEFAULT, kube_version="1.24.17")
    assert proc.returncode != 0
    assert "requires kubeVersion: >=1.25.0-0" in proc.stderr
    assert template_text(DEFAULT, kube_version="1.25.0").returncode == 0


# --- the values schema --------------------------------------------------------


def test_a_misspelt_value_fails_lint_template_and_install(tmp_path: Path) -> None:
    typo = ("serviceMonitr.enabled=true",)
    lint = helm_run("lint", "--strict", "--set", typo[0], str(CHART))
    assert lint.returncode != 0 and "additional properties 'serviceMonitr'" in lint.stdout
    rendered = template_text(DEFAULT, sets=typo)
    assert rendered.returncode != 0 and "'serviceMonitr' not allowed" in rendered.stderr
    installed = install_dry_run(tmp_path, DEFAULT, sets=typo)
    assert installed.returncode != 0 and "'serviceMonitr' not allowed" in installed.stderr


def _owned_levels(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Every mapping in values.yaml the chart owns (not a pass-through type)."""
    levels = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in OPEN_VALUES:
            levels.append(path)
            levels.extend(_owned_levels(value, f"{path}."))
    return levels


def test_every_level_the_chart_owns_refuses_unknown_keys() -> None:
    """Not just the top: a typo one level down (serviceMonitor.enabeld) fails too."""
    levels = _owned_levels(load_values(CHART / "values.yaml"))
    assert {"image", "datadog", "serviceMonitor", "web", "networkPolicy"} <= set(levels)
    for level in ["", *(f"{lv}." for lv in levels)]:
        proc = template_text(DEFAULT, sets=(f"{level}notAValue=1",))
        assert proc.returncode != 0, f"{level or 'top level'} took an unknown key"
        assert "'notAValue' not allowed" in proc.stderr, describe(proc)


def test_a_typo_in_the_config_fails_naming_the_key() -> None:
    """The values schema embeds the configuration's JSON Schema (`python -m exporter.docs`
    writes it): a misspelt key of the exporter's file fails at `helm template`, not in a pod."""
    rendered = template_text(DEFAULT, sets=("config.datadog.timout=20s",))
    assert rendered.returncode != 0
    assert "at '/config/datadog'" in rendered.stderr
    assert "'timout' not allowed" in rendered.stderr


def test_every_collectors_section_is_accepted_and_its_typos_refused(tmp_path: Path) -> None:
    """The values schema follows the registry (regenerated by `python -m exporter.docs`):
    each section, the opt-in network_health included, renders; a misspelt key in it fails."""
    from exporter.collectors.registry import REGISTRY
    from tests.helpers import EXAMPLE_QUERIES

    good = tmp_path / "sections.yaml"
    config = {entry.section: [EXAMPLE_QUERIES[entry.section]] for entry in REGISTRY}
    good.write_text(yaml.safe_dump({"config": config}))
    rendered = yaml.safe_load(exporter_config_map(template(good))["data"]["config.yml"])
    assert rendered["network_health"] == [{"name": "q"}]
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump({"config": {"network_health": [{"name": "q", "categorys": []}]}}))
    proc = template_text(bad)
    assert proc.returncode != 0
    assert "'categorys' not allowed" in proc.stderr, describe(proc)


def test_log_levels_are_the_exporters() -> None:
    from exporter.logs import LEVELS

    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["properties"]["log"]["properties"]["level"]["enum"] == list(LEVELS)


# --- the rules and the dashboard: one source ----------------------------------


def test_the_prometheusrule_groups_are_the_rule_files() -> None:
    """Read at render time through files/rules, a link to deploy/prometheus/rules: the
    chart ships whatever the rule files say now, never a copy."""
    link = CHART / "files" / "rules"
    assert link.is_symlink() and link.resolve() == RULES_DIR.resolve()
    rule = one(template(EXISTING_SECRET), "PrometheusRule")
    assert rule["spec"]["groups"] == rule_groups_of_the_rule_files()
    assert rule["metadata"]["labels"]["release"] == "kps"


def test_the_prometheusrule_passes_promtool(tmp_path: Path) -> None:
    rule = one(template(EXISTING_SECRET), "PrometheusRule")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    proc = run([tool("promtool"), "check", "rules", str(path)])
    assert proc.returncode == 0, describe(proc)


def test_the_dashboard_configmap_is_the_shipped_dashboard() -> None:
    link = CHART / "files" / "dashboard.json"
    assert link.is_symlink() and link.resolve() == DASHBOARD.resolve()
    [config_map] = [
        d for d in template(EXISTING_SECRET) if d["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["datadog-cnm-exporter.json"]) == json.loads(
        DASHBOARD.read_text()
    )
    assert not [d for d in template(DEFAULT) if d["metadata"]["name"].endswith("-dashboard")]


# --- workload shapes ----------------------------------------------------------


def test_one_shard_is_a_deployment_of_one_pod() -> None:
    docs = template(DEFAULT)
    deployment = one(docs, "Deployment")
    assert not by_kind(docs, "StatefulSet")
    assert deployment["spec"]["replicas"] == 1
    assert not {"EXPORTER_SHARD_COUNT", "EXPORTER_SHARD_INDEX"} & set(env(docs))
    assert "clusterIP" not in one(docs, "Service")["spec"]


def test_shards_make_a_statefulset_each_pod_learning_its_shard() -> None:
    docs = template(SHARDED)
    assert not by_kind(docs, "Deployment")
    statefulset = one(docs, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 3
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    service = one(docs, "Service")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    variables = env(docs)
    assert variables["EXPORTER_SHARD_COUNT"]["value"] == "3"
    assert variables["EXPORTER_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert variables["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spec = pod_spec(docs)
    values = load_values(SHARDED)
    for key in ("affinity", "tolerations", "topologySpreadConstraints"):
        assert spec[key] == values[key], key


def test_the_shard_plan_of_the_rendered_config(tmp_path: Path) -> None:
    """What the StatefulSet's comment tells users to run: --config.check with the count."""
    docs = template(SHARDED)
    path = tmp_path / "config.yml"
    path.write_text(exporter_config_map(docs)["data"]["config.yml"])
    proc = run(
        [tool("datadog-cnm-exporter"), "--config.check", f"--config.file={path}", "--shard.count=3"]
    )
    assert proc.returncode == 0, describe(proc)
    assert "shard assignment over 3 replicas" in proc.stdout
    assert (
        "#   datadog-cnm-exporter --config.check --shard.count=3" in template_text(SHARDED).stdout
    )


# --- keys, configuration, site ------------------------------------------------


def test_keys_given_as_values_become_a_secret_mounted_as_files() -> None:
    docs = template(DEFAULT)
    values = load_values(DEFAULT)["datadog"]
    secret = one(docs, "Secret")
    assert secret["metadata"]["name"] == f"{FULLNAME}-keys"
    assert base64.b64decode(secret["data"]["api-key"]).decode() == values["apiKey"]
    assert base64.b64decode(secret["data"]["app-key"]).decode() == values["appKey"]
    _assert_keys_are_files(docs, secret["metadata"]["name"])
    text = template_text(DEFAULT).stdout
    assert values["apiKey"] not in text and values["appKey"] not in text, "only as base64"


def test_an_existing_secret_is_mounted_and_none_is_made() -> None:
    docs = template(EXISTING_SECRET)
    assert not by_kind(docs, "Secret")
    _assert_keys_are_files(docs, "datadog-keys")


def _assert_keys_are_files(docs: list[dict[str, Any]], secret_name: str) -> None:
    variables = env(docs)
    assert "DD_API_KEY" not in variables and "DD_APP_KEY" not in variables
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["name"]: m for m in container(docs)["volumeMounts"]}
    [keys] = [n for n, v in volumes.items() if v.get("secret", {}).get("secretName") == secret_name]
    assert "subPath" not in mounts[keys] and mounts[keys]["readOnly"] is True
    directory = mounts[keys]["mountPath"]
    assert variables["DD_API_KEY_FILE"]["value"] == f"{directory}/api-key"
    assert variables["DD_APP_KEY_FILE"]["value"] == f"{directory}/app-key"


@pytest.mark.parametrize(
    "sets, error",
    [
        (("datadog.apiKey=a", "datadog.appKey=b", "datadog.existingSecret=s"), "not both"),
        (("datadog.apiKey=a",), "apiKey and appKey go together"),
    ],
    ids=["keys-and-existing-secret", "one-key"],
)
def test_ambiguous_keys_are_refused(sets: tuple[str, ...], error: str) -> None:
    proc = template_text(sets=sets)
    assert proc.returncode != 0 and error in proc.stderr, describe(proc)


def shipped_config() -> dict[str, Any]:
    """deploy/kubernetes/base/config.yml but for its site: the chart's site comes from
    datadog.site (DD_SITE), which a site in the file would override."""
    shipped: dict[str, Any] = load_yaml(KUSTOMIZE / "base" / "config.yml")
    del shipped["datadog"]["site"]
    return shipped


def rendered_config(values: Path | None = None, sets: tuple[str, ...] = ()) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(
        exporter_config_map(template(*filter(None, [values]), sets=sets))["data"]["config.yml"]
    )
    return config


def test_the_default_config_is_the_shipped_one_but_for_the_site() -> None:
    """Read through files/config.yml, a link to the kustomize base's file: one copy."""
    link = CHART / "files" / "config.yml"
    assert link.is_symlink()
    assert link.resolve() == (KUSTOMIZE / "base" / "config.yml").resolve()
    assert load_values(CHART / "values.yaml")["config"] == {}
    assert rendered_config() == shipped_config()


def test_your_queries_replace_the_shipped_ones_whole(tmp_path: Path) -> None:
    """Helm merges a values map key by key: a default holding queries would have kept
    polling the shipped dns, cases and audience queries beside a user's connections."""
    mine = {"connections": [{"name": "mine", "group_by": ["client_service"]}]}
    values = tmp_path / "mine.yaml"
    values.write_text(yaml.safe_dump({"config": mine}))
    assert rendered_config(values) == mine
    notes_text = notes(tmp_path, values)
    assert [line for line in notes_text.splitlines() if line.startswith("  - ")] == [
        "  - connections: mine"
    ]


def test_a_config_left_empty_is_the_shipped_one(tmp_path: Path) -> None:
    """`config:` with nothing under it is YAML's null, which Helm reads as no value at all."""
    values = tmp_path / "empty.yaml"
    values.write_text("config:\n")
    assert rendered_config(values) == shipped_config()


def test_settings_alone_keep_the_shipped_queries() -> None:
    """`--set config.datadog.timeout=20s` tunes the shipped configuration, and a config
    naming a section with no query is refused rather than polling nothing."""
    expected = shipped_config()
    expected["datadog"]["timeout"] = "20s"
    assert rendered_config(sets=("config.datadog.timeout=20s",)) == expected
    empty = template_text(sets=("config.connections={}",))
    assert empty.returncode != 0, describe(empty)


@pytest.mark.parametrize("values", [v for v in CI_VALUES if v != NETWORK_POLICY], ids=ids)
def test_the_config_is_rendered_and_the_exporter_accepts_it(values: Path, tmp_path: Path) -> None:
    docs = template(values)
    config_map = exporter_config_map(docs)
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert "--config.file=/etc/datadog-cnm-exporter/config.yml" in container(docs)["args"]
    text = config_map["data"]["config.yml"]
    assert yaml.safe_load(text) == (load_values(values).get("config") or shipped_config())
    path = tmp_path / "config.yml"
    path.write_text(text)
    proc = run([tool("datadog-cnm-exporter"), "--config.check", f"--config.file={path}"])
    assert proc.returncode == 0, describe(proc)
    checksum = workload(docs)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum == hashlib.sha256(text.rstrip("\n").encode()).hexdigest()


def test_a_config_change_rolls_the_pods() -> None:
    def checksum(*sets: str) -> str:
        pod = workload(template(DEFAULT, sets=sets))["spec"]["template"]
        annotation: str = pod["metadata"]["annotations"]["checksum/config"]
        return annotation

    assert checksum() == checksum()
    assert checksum() != checksum("config.datadog.timeout=20s")


def test_an_existing_configmap_is_mounted_and_none_is_made() -> None:
    docs = template(NETWORK_POLICY)
    assert not by_kind(docs, "ConfigMap")
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "my-exporter-config"
    assert "checksum/config" not in (
        workload(docs)["spec"]["template"]["metadata"]["annotations"] or {}
    )


def test_the_site_is_dd_site_and_a_conflicting_config_site_is_refused() -> None:
    assert env(template(EXISTING_SECRET))["DD_SITE"]["value"] == "datadoghq.eu"
    assert "DD_SITE" not in env(template(DEFAULT))
    proc = template_text(EXISTING_SECRET, sets=("config.datadog.site=us5.datadoghq.com",))
    assert proc.returncode != 0 and "differ" in proc.stderr, describe(proc)
    same = template(EXISTING_SECRET, sets=("config.datadog.site=datadoghq.eu",))
    assert env(same)["DD_SITE"]["value"] == "datadoghq.eu"


# --- image, hardening, pass-through -------------------------------------------


def test_the_image_is_the_app_version_unless_a_tag_or_digest_is_given() -> None:
    assert container(template(DEFAULT))["image"] == (
        f"ghcr.io/datadog-cnm-exporter/datadog-cnm-exporter:{exporter.__version__}"
    )
    mine = ("image.repository=registry.example/dce", "image.tag=1.2.3")
    assert container(template(DEFAULT, sets=mine))["image"] == "registry.example/dce:1.2.3"
    digest = "sha256:" + "ab" * 32
    pinned = template(DEFAULT, sets=(*mine, f"image.digest={digest}"))
    assert container(pinned)["image"] == f"registry.example/dce@{digest}"
    assert template_text(DEFAULT, sets=("image.digest=latest",)).returncode != 0


@pytest.mark.parametrize("values", CI_VALUES, ids=ids)
def test_hardened_by_default(values: Path) -> None:
    docs = template(values)
    spec = pod_spec(docs)
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 65532
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container(docs)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["privileged"] is False
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}
    assert volumes[mounts["/tmp"]]["emptyDir"] == {"sizeLimit": "16Mi"}
    assert [p["containerPort"] for p in container(docs)["ports"]] == [EXPORTER_PORT]
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        assert container(docs)[probe]["httpGet"]["path"] == path


def test_extra_args_env_volumes_and_priority_reach_the_pod() -> None:
    docs = template(EXISTING_SECRET)
    values = load_values(EXISTING_SECRET)
    spec, exporter_container = pod_spec(docs), container(docs)
    assert exporter_container["args"][-1] == "--web.max-requests=8"
    assert env(docs)["HTTPS_PROXY"] == values["extraEnv"][0]
    assert values["extraVolumes"][0] in spec["volumes"]
    assert values["extraVolumeMounts"][0] in exporter_container["volumeMounts"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert exporter_container["resources"] == values["resources"]
    assert "resources" not in container(template(DEFAULT)), "left to the user"


def test_the_network_policy_allows_scrapes_dns_and_443_only() -> None:
    docs = template(NETWORK_POLICY)
    policy = one(docs, "NetworkPolicy")
    values = load_values(NETWORK_POLICY)["networkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        workload(docs)["spec"]["template"]["metadata"]["labels"].items()
    )
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    assert ingress["from"] == values["ingressFrom"]
    ports = [(p["port"], p["protocol"]) for rule in policy["spec"]["egress"] for p in rule["ports"]]
    assert ports == [(53, "UDP"), (53, "TCP"), (443, "TCP"), (3128, "TCP")]
    assert policy["spec"]["egress"][-1] == values["extraEgress"][0]
    assert not by_kind(template(DEFAULT), "NetworkPolicy")


# --- scraping -----------------------------------------------------------------


def test_the_servicemonitor_scrapes_the_service_as_job_datadog_cnm_exporter() -> None:
    docs = template(EXISTING_SECRET)
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert monitor["metadata"]["namespace"] == NAMESPACE == service["metadata"]["namespace"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    # The operator takes job from the Service label jobLabel names: the shipped alerts'
    # job, whatever the release is called.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "datadog-cnm-exporter"
    assert service["metadata"]["name"] != "datadog-cnm-exporter"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "http-metrics"
    assert (endpoint["scheme"], endpoint["interval"], endpoint["path"]) == (
        "http",
        "30s",
        "/metrics",
    )
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert "release" not in monitor["spec"]["selector"]["matchLabels"]
    assert not by_kind(template(DEFAULT), "ServiceMonitor")


def test_the_web_config_secret_turns_on_tls_for_probes_and_scrapes() -> None:
    docs = template(WEB_CONFIG)
    values = load_values(WEB_CONFIG)
    exporter_container = container(docs)
    assert (
        "--web.config.file=/etc/datadog-cnm-exporter-web/web-config.yml"
        in (exporter_container["args"])
    )
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["name"]: m for m in exporter_container["volumeMounts"]}
    assert volumes["web"]["secret"]["secretName"] == "exporter-web"
    assert mounts["web"]["mountPath"] == "/etc/datadog-cnm-exporter-web"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert exporter_container[probe]["httpGet"]["scheme"] == "HTTPS", probe
    [endpoint] = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == values["serviceMonitor"]["tlsConfig"]
    assert endpoint["basicAuth"] == values["serviceMonitor"]["basicAuth"]
    plain = container(template(DEFAULT))
    assert plain["livenessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert not any(a.startswith("--web.config.file") for a in plain["args"])


# --- NOTES.txt ----------------------------------------------------------------


def test_notes_without_keys_say_so_and_how_to_fix_it(tmp_path: Path) -> None:
    text = notes(tmp_path)
    assert "NO DATADOG KEYS GIVEN" in text
    assert (
        f"kubectl -n {NAMESPACE} create secret generic {FULLNAME}-keys \\\n"
        '    --from-literal=api-key="$DD_API_KEY" --from-literal=app-key="$DD_APP_KEY"'
    ) in text
    # ... and that Secret is the one the pod mounts.
    volumes = {v["name"]: v for v in pod_spec(template())["volumes"]}
    assert volumes["keys"]["secret"]["secretName"] == f"{FULLNAME}-keys"


@pytest.mark.parametrize("values", CI_VALUES, ids=ids)
def test_notes_tell_how_to_reach_metrics_and_what_is_configured(
    values: Path, tmp_path: Path
) -> None:
    text = notes(tmp_path, values)
    docs = template(values)
    service = one(docs, "Service")["metadata"]["name"]
    assert "NO DATADOG KEYS GIVEN" not in text
    assert f"kubectl -n {NAMESPACE} port-forward svc/{service} 10173:10173" in text
    scheme = "https" if load_values(values).get("web", {}).get("tls") else "http"
    assert f"{scheme}://{service}.{NAMESPACE}.svc:10173/metrics" in text
    web_secret = load_values(values).get("web", {}).get("existingSecret")
    assert (f"web config of Secret {web_secret}: curl -u" in text) == bool(web_secret)
    config_maps = [d for d in by_kind(docs, "ConfigMap") if "config.yml" in d["data"]]
    if config_maps:
        config = yaml.safe_load(config_maps[0]["data"]["config.yml"])
        listed = [line.strip() for line in text.splitlines() if line.startswith("  - ")]
        assert listed == [
            f"- {collector}: {query.get('name') or query['entity']}"
            for collector in sorted(config.keys() - {"datadog"})
            for query in config[collector]
        ]
    else:
        assert "from your ConfigMap my-exporter-config" in text
    kind = workload(docs)["kind"]
    assert ("a StatefulSet of 3 shards" in text) == (kind == "StatefulSet")
    assert ("ServiceMonitor" in text.split("No ServiceMonitor")[0]) == bool(
        by_kind(docs, "ServiceMonitor")
    )


# --- helm package -------------------------------------------------------------


def test_helm_package_holds_the_chart_and_nothing_else(tmp_path: Path) -> None:
    proc = helm_run("package", str(CHART), "--destination", str(tmp_path))
    assert proc.returncode == 0, describe(proc)
    archive = tmp_path / f"datadog-cnm-exporter-{exporter.__version__}.tgz"
    with tarfile.open(archive) as tar:
        members = {m.name.removeprefix("datadog-cnm-exporter/"): m for m in tar.getmembers()}
        assert all(m.isfile() for m in members.values()), "links resolved into files"
        rules = {f"files/rules/{p.name}" for p in RULES_DIR.glob("*.yml")}
        templates = {f"templates/{p.name}" for p in (CHART / "templates").iterdir()}
        assert set(members) == {
            "Chart.yaml",
            "values.yaml",
            "values.schema.json",
            ".helmignore",
            "files/dashboard.json",
            "files/config.yml",
            *rules,
            *templates,
        }
        for name in rules:
            extracted = tar.extractfile(members[name])
            assert extracted is not None
            assert extracted.read() == (RULES_DIR / Path(name).name).read_bytes()
        config = tar.extractfile(members["files/config.yml"])
        assert config is not None
        assert config.read() == (KUSTOMIZE / "base" / "config.yml").read_bytes()
    # The packaged chart renders what the checkout renders.
    packaged = helm_run("template", RELEASE, str(archive), "--namespace", NAMESPACE,
                        "--values", str(EXISTING_SECRET))  # fmt: skip
    assert packaged.returncode == 0, describe(packaged)
    assert packaged.stdout == template_text(EXISTING_SECRET).stdout
