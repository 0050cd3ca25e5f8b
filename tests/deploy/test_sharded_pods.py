"""The sharded variant's pod template, run as the three pods its StatefulSet would make
(`datadog-cnm-exporter-0`, `-1`, `-2`, each its own hostname): every query is polled by
exactly one of them, the one the rendezvous hash names, and each pod learns its shard
from what the manifest wires into it.

podman cannot play a StatefulSet, so the test makes its pods the way the controller
does: the rendered template, named `<name>-<ordinal>`, with the label
`apps.kubernetes.io/pod-index` (Kubernetes >= 1.28) or without it (older clusters, where
the manifest's fallback, the pod name, gives the index). Test-time additions, in an
overlay on top of deploy/kubernetes/sharded: a simulator container in each pod (pods
share no loopback), the Secret from test keys, the local image, and a configuration of
ten queries polled every 2-3 s, each with its own `limit`, which the simulator's request
log records: that is how the test tells the queries apart.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.sharding import assignment
from tests.deploy.deploy_support import EXPORTER_CONTAINER, KUSTOMIZE
from tests.deploy.podman_support import (
    SIMULATOR_CONTAINER,
    SIMULATOR_URL,
    Built,
    diagnose,
    fetch_inside,
    for_podman,
    image_overrides,
    logs,
    played,
    render,
    secret_file_text,
    secret_manifest,
    simulator_container,
    wait_for,
)

# The first test's set-up builds the images (on a fresh machine a debootstrapped base too):
# longer than the suite's default timeout allows.
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

KEYS = {"api-key": "sharded-test-api-key-0123", "app-key": "sharded-test-app-key-4567"}
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

# (collector, query name) -> the limit that marks its requests.
QUERIES: dict[tuple[str, str], int] = {
    **{("connections", f"pairs_{n}"): 100 + n for n in range(1, 5)},
    **{("dns", f"names_{n}"): 200 + n for n in range(1, 3)},
    **{("cases", f"priorities_{n}"): 10 + n for n in range(1, 3)},
}
AUDIENCE = ("users", "accounts")


def exporter_config() -> str:
    config: dict[str, list[dict[str, Any]]] = {"connections": [], "dns": [], "cases": []}
    for (collector, name), limit in QUERIES.items():
        query: dict[str, Any] = {"name": name, "limit": limit, "interval": "2s"}
        if collector == "connections":
            query |= {"group_by": ["client_service", "server_service"], "window": "5m"}
        elif collector == "dns":
            query |= {"window": "5m"}
        else:
            query |= {"group_by": ["priority"]}
        config[collector].append(query)
    config["audience"] = [{"entity": entity, "interval": "3s"} for entity in AUDIENCE]
    return yaml.safe_dump(config, sort_keys=False)


def polled_query(request: dict[str, Any]) -> tuple[str, str]:
    """(collector, query name) of one request in the simulator's log."""
    endpoint = request["endpoint"]
    if endpoint == "audience":
        return endpoint, request["path"].split("/")[4]
    if endpoint == "cases":
        limit = request["body"]["data"]["attributes"]["group_by"]["limit"]
    else:
        limit = int(request["query"]["limit"])
    [name] = [name for (c, name), lim in QUERIES.items() if c == endpoint and lim == limit]
    return endpoint, name


def all_queries() -> set[tuple[str, str]]:
    return set(QUERIES) | {("audience", entity) for entity in AUDIENCE}


def overlay(directory: Path) -> Path:
    (directory / "config.yml").write_text(exporter_config())
    keys = {name: secret_file_text(value) for name, value in KEYS.items()}
    patch = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "datadog-cnm-exporter"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": EXPORTER_CONTAINER,
                            "env": [{"name": "DD_API_URL", "value": SIMULATOR_URL}],
                        },
                        simulator_container(keys["api-key"], keys["app-key"]),
                    ]
                }
            }
        },
    }
    (directory / "pod-patch.yaml").write_text(yaml.safe_dump(patch))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "monitoring",
        "resources": [os.path.relpath(KUSTOMIZE / "sharded", directory)],
        "images": image_overrides(),
        "configMapGenerator": [
            {"name": "datadog-cnm-exporter-config", "behavior": "replace", "files": ["config.yml"]}
        ],
        # The variant makes its StatefulSet out of a Deployment: select it by what it is now.
        "patches": [
            {
                "path": "pod-patch.yaml",
                "target": {"kind": "StatefulSet", "name": "datadog-cnm-exporter"},
            }
        ],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def statefulset_pods(docs: list[dict[str, Any]], *, index_label: bool) -> list[dict[str, Any]]:
    """The ConfigMaps, and the StatefulSet's pods as its controller would create them."""
    [statefulset] = [d for d in docs if d["kind"] == "StatefulSet"]
    name = statefulset["metadata"]["name"]
    template = statefulset["spec"]["template"]
    pods = []
    for ordinal in range(statefulset["spec"]["replicas"]):
        labels = dict(template["metadata"]["labels"])
        labels["statefulset.kubernetes.io/pod-name"] = f"{name}-{ordinal}"
        if index_label:
            labels[POD_INDEX_LABEL] = str(ordinal)
        pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"{name}-{ordinal}", "labels": labels},
                "spec": copy.deepcopy(template["spec"]),
            }
        )
    return [d for d in docs if d["kind"] == "ConfigMap"] + pods


def sharding_log(container: str) -> dict[str, Any]:
    for line in logs(container).splitlines():
        if line.startswith("{") and json.loads(line).get("msg") == "sharding":
            event: dict[str, Any] = json.loads(line)
            return event
    return {}


@pytest.mark.parametrize("index_label", [True, False], ids=["pod-index-label", "pod-name-only"])
def test_each_query_is_polled_by_exactly_the_shard_that_owns_it(
    index_label: bool, tmp_path: Path, exporter: Built
) -> None:
    docs = render(overlay(tmp_path))
    [statefulset] = [d for d in docs if d["kind"] == "StatefulSet"]
    count = statefulset["spec"]["replicas"]
    assert count == 3
    owned = assignment([("default", c, n) for c, n in sorted(all_queries())], count)
    owners = {(c, n): shard for shard, identities in owned.items() for _, c, n in identities}
    assert set(owners.values()) == set(range(count)), "every shard owns a query here"

    pods = for_podman(statefulset_pods(docs, index_label=index_label))
    with played(tmp_path, secret_manifest("datadog-cnm-exporter-keys", KEYS), pods) as names:
        assert names == [f"datadog-cnm-exporter-{i}" for i in range(count)]
        simulators = [f"{pod}-{SIMULATOR_CONTAINER}" for pod in names]
        exporters = [f"{pod}-{EXPORTER_CONTAINER}" for pod in names]

        def polls() -> dict[tuple[str, str], Counter[int]] | None:
            seen: dict[tuple[str, str], Counter[int]] = {}
            for shard, simulator in enumerate(simulators):
                answer = fetch_inside(simulator, f"{SIMULATOR_URL}/_simulator/requests")
                if answer.status != 200:
                    return None
                for request in answer.json()["requests"]:
                    assert request["status"] == 200, request
                    seen.setdefault(polled_query(request), Counter())[shard] += 1
            # Every query polled at least twice, so a second poller would have shown.
            enough = set(seen) == all_queries() and all(sum(c.values()) >= 2 for c in seen.values())
            return seen if enough else None

        try:
            seen = wait_for("every query polled twice", polls, timeout=90)
            for shard, container in enumerate(exporters):
                event = sharding_log(container)
                assert (event.get("index"), event.get("count")) == (shard, count), event
                expected_source = (
                    "EXPORTER_SHARD_INDEX" if index_label else f"POD_NAME={names[shard]}"
                )
                assert event.get("index_from") == expected_source, event
        except BaseException:
            print(diagnose(exporters + simulators))
            raise
    pollers = {query: sorted(counter) for query, counter in seen.items()}
    assert pollers == {query: [shard] for query, shard in owners.items()}
