"""The Helm chart's pods, run by `podman kube play` from `helm template` with the ci
values files: the one-pod Deployment (ci/default-values.yaml: the chart makes the Secret
from datadog.apiKey/appKey) and the sharded StatefulSet (ci/sharded-values.yaml: keys
from an existing Secret), each next to the Datadog simulator.

Test-time additions, made to the rendered documents and nothing else: the local image
(image.repository/tag), DD_API_URL pointing at the simulator (extraEnv), a configuration
of short intervals (config), the simulator as one more container of each pod, and this
run's names (podman_support.per_run). The StatefulSet's pods are made as its controller
would (shard_support.statefulset_pods): podman cannot play a StatefulSet.

What podman cannot emulate, so no test here runs it: the Service, ServiceMonitor,
PrometheusRule, NetworkPolicy and PodDisruptionBudget (no API server, no operator, no
CNI policy, no evictions); the kubelet's probes (made by hand below); the web config
(ci/web-config-values.yaml): podman 4.3 writes a Secret's files as the base64 text of the
values, so a web-config.yml and its certificates from a Secret cannot be read as such.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import EXPORTER_CONTAINER
from tests.deploy.helm_support import CHART, load_values, template
from tests.deploy.podman_support import (
    EXPORTER_IMAGE,
    SIMULATOR_CONTAINER,
    SIMULATOR_URL,
    Built,
    diagnose,
    fetch_inside,
    for_podman,
    played,
    python_inside,
    run_name,
    samples,
    secret_file_text,
    secret_manifest,
    simulator_container,
    wait_for,
)
from tests.deploy.shard_support import exporter_config, owners, pollers, statefulset_pods

# The first test's set-up builds the images (on a fresh machine a debootstrapped base too).
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

DEFAULT = CHART / "ci" / "default-values.yaml"
SHARDED = CHART / "ci" / "sharded-values.yaml"
EXPORTER_URL = "http://127.0.0.1:10173"
PLAYABLE = {"ConfigMap", "Deployment", "Pod"}
KEY_DIR = "/var/run/secrets/datadog"


def values_for_the_test(directory: Path, config: dict[str, Any]) -> Path:
    """The test-time values: this run's image, the simulator as Datadog, `config`."""
    repository, _, tag = EXPORTER_IMAGE.rpartition(":")
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "extraEnv": [{"name": "DD_API_URL", "value": SIMULATOR_URL}],
        "config": config,
    }
    path = directory / "test-values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def with_simulator(pod_spec: dict[str, Any], keys: dict[str, str]) -> None:
    """The simulator beside the exporter, accepting the keys as podman writes them."""
    texts = {name: secret_file_text(value) for name, value in keys.items()}
    pod_spec["containers"].append(simulator_container(texts["api-key"], texts["app-key"]))


# --- one pod: the Deployment ------------------------------------------------------


@dataclass(frozen=True)
class Played:
    docs: list[dict[str, Any]]
    name: str

    @property
    def exporter(self) -> str:
        return f"{self.name}-{EXPORTER_CONTAINER}"

    @property
    def simulator(self) -> str:
        return f"{self.name}-{SIMULATOR_CONTAINER}"

    def metrics(self) -> str:
        answer = fetch_inside(self.exporter, f"{EXPORTER_URL}/metrics")
        return answer.body if answer.status == 200 else ""

    def config_map(self) -> dict[str, Any]:
        [found] = [d for d in self.docs if d["kind"] == "ConfigMap"]
        return found


def short_intervals() -> dict[str, Any]:
    """The chart's default configuration, every poll every 5 s (the image's baked-in
    config polls every 60 s: 5 s shows the ConfigMap is what the exporter reads)."""
    config: dict[str, Any] = load_values(CHART / "files" / "config.yml")
    del config["datadog"]["site"]  # as the chart leaves it to datadog.site
    for section in config.keys() - {"datadog"}:
        for query in config[section]:
            query["interval"] = "5s"
    return config


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, exporter: Built) -> Iterator[Played]:
    directory = tmp_path_factory.mktemp("helm-deployment")
    rendered = template(DEFAULT, values_for_the_test(directory, short_intervals()))
    [secret] = [d for d in rendered if d["kind"] == "Secret"]  # made by the chart
    docs = [d for d in rendered if d["kind"] in PLAYABLE]
    [workload] = [d for d in docs if d["kind"] == "Deployment"]
    with_simulator(workload["spec"]["template"]["spec"], load_keys(DEFAULT))
    docs = for_podman(docs)
    with played(directory, secret, docs) as names:
        [name] = names
        pod = Played(docs, name)
        try:
            wait_for(
                "the exporter's /-/ready inside the pod",
                lambda: fetch_inside(pod.exporter, f"{EXPORTER_URL}/-/ready").status == 200,
                timeout=60,
            )
        except BaseException:
            print(diagnose([pod.exporter, pod.simulator]))
            raise
        yield pod


def load_keys(values: Path) -> dict[str, str]:
    datadog = load_values(values)["datadog"]
    return {"api-key": datadog["apiKey"], "app-key": datadog["appKey"]}


def configured_queries(config_text: str) -> set[tuple[str, str]]:
    config = yaml.safe_load(config_text)
    return {
        (collector, query.get("name") or query["entity"])
        for collector in ("connections", "dns", "cases", "audience")
        for query in config.get(collector, [])
    }


def test_every_configured_query_is_up_with_keys_from_the_chart_secret(
    deployment: Played,
) -> None:
    """The simulator accepts only the ci values' keys (as podman writes them): every poll
    succeeding means the exporter read them from the Secret's files."""
    for name, value in load_keys(DEFAULT).items():
        text = python_inside(deployment.exporter, f"print(open('{KEY_DIR}/{name}').read())")
        assert text.strip() == secret_file_text(value)
    configured = configured_queries(deployment.config_map()["data"]["config.yml"])

    def all_up() -> dict[tuple[str, str], float] | None:
        up = {
            (labels["collector"], labels["query"]): value
            for labels, value in samples(deployment.metrics(), "datadog_exporter_up")
        }
        return up if set(up) == configured and all(up.values()) else None

    try:
        wait_for("every configured query up", all_up, timeout=90)
    except BaseException:
        print(diagnose([deployment.exporter, deployment.simulator]))
        raise
    requests = fetch_inside(deployment.simulator, f"{SIMULATOR_URL}/_simulator/requests").json()
    assert {r["status"] for r in requests["requests"]} == {200}, "never a wrong key (403)"


def test_the_configuration_is_the_charts_configmap(deployment: Played) -> None:
    mounted = python_inside(
        deployment.exporter, "print(open('/etc/datadog-cnm-exporter/config.yml').read())"
    )
    assert mounted.rstrip("\n") == deployment.config_map()["data"]["config.yml"].rstrip("\n")
    intervals = {
        (labels["collector"], labels["query"]): value
        for labels, value in samples(deployment.metrics(), "datadog_exporter_interval_seconds")
    }
    configured = configured_queries(deployment.config_map()["data"]["config.yml"])
    assert intervals == dict.fromkeys(configured, 5)


def test_the_pod_runs_hardened(deployment: Played) -> None:
    """The chart's security contexts, as the runtime applied them to the exporter."""
    status = dict(
        line.split(":\t", 1)
        for line in python_inside(
            deployment.exporter, "print(open('/proc/1/status').read())"
        ).splitlines()
        if ":\t" in line
    )
    assert status["Uid"].split() == ["65532"] * 4
    assert int(status["CapEff"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    write = "try:\n    open('/etc/probe', 'w')\nexcept OSError as exc:\n    print(exc.strerror)"
    assert python_inside(deployment.exporter, write).strip() == "Read-only file system"


def test_the_probe_paths_answer_on_the_named_port(deployment: Played) -> None:
    """podman makes no kubelet probes; the requests are made by hand from the simulator."""
    [workload] = [d for d in deployment.docs if d["kind"] == "Deployment"]
    [container] = [
        c
        for c in workload["spec"]["template"]["spec"]["containers"]
        if c["name"] == EXPORTER_CONTAINER
    ]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        url = f"http://127.0.0.1:{ports[get['port']]}{get['path']}"
        assert fetch_inside(deployment.simulator, url).status == 200, probe


# --- shards: the StatefulSet's pods -------------------------------------------------


def test_each_shard_pod_polls_exactly_its_queries(tmp_path: Path, exporter: Built) -> None:
    config = yaml.safe_load(exporter_config())
    rendered = template(SHARDED, values_for_the_test(tmp_path, config))
    [statefulset] = [d for d in rendered if d["kind"] == "StatefulSet"]
    count = statefulset["spec"]["replicas"]
    assert count == load_values(SHARDED)["shards"] == 3
    expected = owners(count)
    pods = statefulset_pods(rendered, index_label=True)
    for pod in pods:
        if pod["kind"] == "Pod":
            with_simulator(pod["spec"], KEYS)
    secret_name = load_values(SHARDED)["datadog"]["existingSecret"]
    with played(tmp_path, secret_manifest(secret_name, KEYS), for_podman(pods)) as names:
        fullname = statefulset["metadata"]["name"]
        assert names == [run_name(f"{fullname}-{i}") for i in range(count)]
        seen = pollers(names, index_label=True)
    assert seen == {query: [shard] for query, shard in expected.items()}


KEYS = {"api-key": "helm-sharded-api-key-0123", "app-key": "helm-sharded-app-key-4567"}
