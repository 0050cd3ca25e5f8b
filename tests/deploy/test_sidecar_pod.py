"""The classic sidecar example, rendered by kustomize and run as a pod by `podman kube
play`, next to a real Prometheus: it scrapes the exporter over localhost, loads the
shipped rules, and a retransmit storm in the simulated Datadog fires
DatadogCNMHighRetransmitRatio in it.

Test-time additions only, in a test overlay on top of the example: the Datadog simulator
as one more container of the pod (and DD_API_URL pointing the exporter at it), the
Secret made from test keys, the local images, and for speed a configuration with 5 s
polls (the example's ConfigMap replaced the way docs/deployment.md documents), Prometheus
scraping and evaluating every 2 s with the shipped rule files mounted, and the alert's
`for:` shortened from 3m to 6s. Everything else is the example as users apply it.

podman 4.3 cannot run the native-sidecar variant: it refuses an init container with
probes ("cannot create an init container that has either of lifecycle, livenessProbe,
readinessProbe, or startupProbe set"), and without them waits for the exporter to exit
before starting Prometheus. The native container is held equal to this one by
test_kubernetes_manifests.py::test_exporter_container_is_the_same_in_every_variant.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.deploy.deploy_support import EXPORTER_CONTAINER, KUSTOMIZE, RULE_FILES, load_yaml
from tests.deploy.podman_support import (
    SIMULATOR_CONTAINER,
    SIMULATOR_URL,
    Built,
    diagnose,
    fetch_inside,
    for_podman,
    image_overrides,
    played,
    python_inside,
    render,
    samples,
    secret_file_text,
    secret_manifest,
    simulator_container,
    wait_for,
)

# The first test's set-up builds the images (on a fresh machine a debootstrapped base too):
# longer than the suite's default timeout allows.
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

EXAMPLE = KUSTOMIZE / "examples" / "prometheus-sidecar"
EXPORTER_URL = "http://127.0.0.1:10173"
PROMETHEUS_URL = "http://127.0.0.1:9090"

KEYS = {"api-key": "sidecar-test-api-key-0123", "app-key": "sidecar-test-app-key-4567"}
POLL_INTERVAL = "5s"
RULES_DIR = "/etc/prometheus-rules"
ALERT = "DatadogCNMHighRetransmitRatio"
ALERT_FOR = "6s"
STORM = {"client_service": "checkout", "server_service": "payments-db"}


def exporter_config() -> str:
    """The shipped configuration with every poll every 5 s."""
    config = load_yaml(KUSTOMIZE / "base" / "config.yml")
    for section in ("connections", "dns", "cases", "audience"):
        for query in config[section]:
            query["interval"] = POLL_INTERVAL
    return yaml.safe_dump(config, sort_keys=False)


def prometheus_config() -> str:
    """The example's Prometheus configuration, evaluating the shipped rules, every 2 s."""
    config = load_yaml(EXAMPLE / "prometheus.yml")
    config["global"] = {"scrape_interval": "2s", "evaluation_interval": "2s"}
    config["rule_files"] = [f"{RULES_DIR}/*.yml"]
    return yaml.safe_dump(config, sort_keys=False)


def rule_file(path: Path) -> str:
    """A shipped rule file; the storm alert's `for:` shortened so the test ends soon."""
    rules = load_yaml(path)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == ALERT:
                rule["for"] = ALERT_FOR
    return yaml.safe_dump(rules, sort_keys=False)


def overlay(directory: Path, prometheus: Built) -> Path:
    """The test overlay on top of the example, written into `directory`."""
    (directory / "config.yml").write_text(exporter_config())
    (directory / "prometheus.yml").write_text(prometheus_config())
    for path in RULE_FILES:
        (directory / path.name).write_text(rule_file(path))
    keys = {name: secret_file_text(value) for name, value in KEYS.items()}
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "prometheus"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": EXPORTER_CONTAINER,
                            "env": [{"name": "DD_API_URL", "value": SIMULATOR_URL}],
                        },
                        {
                            "name": "prometheus",
                            "volumeMounts": [
                                {"name": "rules", "mountPath": RULES_DIR, "readOnly": True}
                            ],
                        },
                        simulator_container(keys["api-key"], keys["app-key"]),
                    ],
                    "volumes": [{"name": "rules", "configMap": {"name": "prometheus-rules"}}],
                }
            }
        },
    }
    (directory / "pod-patch.yaml").write_text(yaml.safe_dump(patch))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "monitoring",
        "resources": [os.path.relpath(EXAMPLE, directory)],
        "images": image_overrides(prometheus),
        "configMapGenerator": [
            {"name": "datadog-cnm-exporter-config", "behavior": "replace", "files": ["config.yml"]},
            {"name": "prometheus-config", "behavior": "replace", "files": ["prometheus.yml"]},
            {"name": "prometheus-rules", "files": [path.name for path in RULE_FILES]},
        ],
        "patches": [{"path": "pod-patch.yaml"}],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


@dataclass(frozen=True)
class Pod:
    docs: list[dict[str, Any]]
    name: str  # podman's name for the Deployment's pod, this run's own

    @property
    def exporter(self) -> str:
        return f"{self.name}-{EXPORTER_CONTAINER}"

    @property
    def prometheus_container(self) -> str:
        return f"{self.name}-prometheus"

    @property
    def simulator(self) -> str:
        return f"{self.name}-{SIMULATOR_CONTAINER}"

    def config_map(self, prefix: str) -> dict[str, Any]:
        [found] = [
            d
            for d in self.docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix)
        ]
        return found

    def container(self, name: str) -> dict[str, Any]:
        [deployment] = [d for d in self.docs if d["kind"] == "Deployment"]
        containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
        [found] = [c for c in containers if c["name"] == name]
        return found

    def metrics(self) -> str:
        answer = fetch_inside(self.exporter, f"{EXPORTER_URL}/metrics")
        return answer.body if answer.status == 200 else ""

    def prometheus(self, path: str) -> Any:
        answer = fetch_inside(self.exporter, f"{PROMETHEUS_URL}{path}")
        assert answer.status == 200, answer.body
        return answer.json()["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.prometheus(f"/api/v1/query?query={quote(expr)}")[
            "result"
        ]
        return result


@pytest.fixture(scope="module")
def pod(
    tmp_path_factory: pytest.TempPathFactory, exporter: Built, prometheus: Built
) -> Iterator[Pod]:
    directory = overlay(tmp_path_factory.mktemp("sidecar-overlay"), prometheus)
    docs = for_podman(render(directory))
    with played(directory, secret_manifest("datadog-cnm-exporter-keys", KEYS), docs) as names:
        [name] = names
        played_pod = Pod(docs, name)
        try:
            wait_for(
                "the exporter's /-/ready inside the pod",
                lambda: fetch_inside(played_pod.exporter, f"{EXPORTER_URL}/-/ready").status == 200,
                timeout=60,
            )
        except BaseException:
            print(
                diagnose(
                    [played_pod.exporter, played_pod.prometheus_container, played_pod.simulator]
                )
            )
            raise
        yield played_pod


def exporter_up(pod: Pod) -> dict[str, float]:
    return {
        labels["collector"]: value
        for labels, value in samples(pod.metrics(), "datadog_exporter_up")
    }


def test_every_collector_is_up_with_keys_from_the_secret_files(pod: Pod) -> None:
    """The simulator accepts only the test keys, so polls succeed only if the exporter
    read them from the mounted Secret files (as podman 4.3 writes them)."""
    for name, value in KEYS.items():
        text = python_inside(pod.exporter, f"print(open('/var/run/secrets/datadog/{name}').read())")
        assert text.strip() == secret_file_text(value)

    def all_up() -> dict[str, float] | None:
        up = exporter_up(pod)
        return up if len(up) == 4 and all(up.values()) else None

    up = wait_for("every collector up", all_up, timeout=60)
    assert set(up) == {"connections", "dns", "cases", "audience"}
    requests = fetch_inside(pod.simulator, f"{SIMULATOR_URL}/_simulator/requests").json()
    assert {r["endpoint"] for r in requests["requests"]} == set(up)
    assert {r["status"] for r in requests["requests"]} == {200}, "never a wrong key (403)"


def test_configuration_comes_from_the_configmap(pod: Pod) -> None:
    """The image carries the shipped config.yml (60 s polls) at the same path; the 5 s
    intervals show the mounted ConfigMap is what the exporter reads."""
    mounted = python_inside(
        pod.exporter, "print(open('/etc/datadog-cnm-exporter/config.yml').read())"
    )
    config_map = pod.config_map("datadog-cnm-exporter-config-")
    assert mounted.rstrip("\n") == config_map["data"]["config.yml"].rstrip("\n")
    intervals = {
        labels["query"]: value
        for labels, value in samples(pod.metrics(), "datadog_exporter_interval_seconds")
    }
    assert intervals == {"svc_to_svc": 5, "dns_by_query": 5, "open_by_priority": 5, "users": 5}


def test_probe_paths_answer_on_the_probe_port(pod: Pod) -> None:
    """podman turns probes into curl healthchecks run by systemd timers, which neither
    exist here; the kubelet's requests are made by hand, from another container."""
    container = pod.container(EXPORTER_CONTAINER)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        answer = fetch_inside(
            pod.prometheus_container, f"http://127.0.0.1:{get['port']}{get['path']}"
        )
        assert answer.status == 200, (probe, answer)


def test_prometheus_scrapes_the_exporter_over_localhost(pod: Pod) -> None:
    def healthy() -> list[dict[str, Any]] | None:
        targets = pod.prometheus("/api/v1/targets")["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    [target] = wait_for("the exporter target up", healthy, timeout=60)
    assert target["labels"]["job"] == "datadog-cnm-exporter"
    assert target["scrapeUrl"] == "http://localhost:10173/metrics"

    def all_up() -> list[dict[str, Any]] | None:
        series = pod.query('datadog_exporter_up{job="datadog-cnm-exporter"}')
        return series if len(series) == 4 and all(s["value"][1] == "1" for s in series) else None

    up = wait_for("datadog_exporter_up 1 in Prometheus for every collector", all_up, timeout=60)
    assert {s["metric"]["collector"] for s in up} == {"connections", "dns", "cases", "audience"}


def test_the_shipped_rules_load(pod: Pod) -> None:
    groups = pod.prometheus("/api/v1/rules")["groups"]
    loaded = {g["name"]: sorted(r["name"] for r in g["rules"]) for g in groups}
    shipped = {
        g["name"]: sorted(r.get("alert") or r["record"] for r in g["rules"])
        for path in RULE_FILES
        for g in load_yaml(path)["groups"]
    }
    assert loaded == shipped
    assert all(r["health"] != "err" for g in groups for r in g["rules"]), groups


def storm_alerts(pod: Pod, state: str) -> list[dict[str, Any]]:
    matchers = ",".join(f'{k}="{v}"' for k, v in STORM.items())
    return pod.query(f'ALERTS{{alertname="{ALERT}",alertstate="{state}",{matchers}}}')


def test_a_retransmit_storm_fires_the_alert(pod: Pod) -> None:
    wait_for(
        "the retransmit ratio recorded for the storm's service pair",
        lambda: pod.query(
            "query:datadog_cnm_tcp_retransmits_per_client_packet:ratio"
            + "{" + ",".join(f'{k}="{v}"' for k, v in STORM.items()) + "}"
        ),
        timeout=90,
    )  # fmt: skip
    assert storm_alerts(pod, "firing") == [], "not before the storm"
    answer = fetch_inside(
        pod.simulator,
        f"{SIMULATOR_URL}/_simulator/scenario",
        method="POST",
        body={"kind": "retransmit_storm", "match": STORM},
    )
    assert answer.status == 200, answer
    [alert] = wait_for(f"{ALERT} firing", lambda: storm_alerts(pod, "firing"), timeout=90)
    assert alert["metric"]["query"] == "svc_to_svc"
    assert alert["metric"]["job"] == "datadog-cnm-exporter"
