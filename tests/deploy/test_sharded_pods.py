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

import os
from pathlib import Path

import pytest
import yaml

from tests.deploy.deploy_support import EXPORTER_CONTAINER, KUSTOMIZE
from tests.deploy.podman_support import (
    SIMULATOR_URL,
    Built,
    for_podman,
    image_overrides,
    played,
    render,
    run_name,
    secret_file_text,
    secret_manifest,
    simulator_container,
)
from tests.deploy.shard_support import exporter_config, owners, pollers, statefulset_pods

# The first test's set-up builds the images (on a fresh machine a debootstrapped base too):
# longer than the suite's default timeout allows.
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

KEYS = {"api-key": "sharded-test-api-key-0123", "app-key": "sharded-test-app-key-4567"}


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


@pytest.mark.parametrize("index_label", [True, False], ids=["pod-index-label", "pod-name-only"])
def test_each_query_is_polled_by_exactly_the_shard_that_owns_it(
    index_label: bool, tmp_path: Path, exporter: Built
) -> None:
    docs = render(overlay(tmp_path))
    [statefulset] = [d for d in docs if d["kind"] == "StatefulSet"]
    count = statefulset["spec"]["replicas"]
    assert count == 3
    expected = owners(count)

    pods = for_podman(statefulset_pods(docs, index_label=index_label))
    with played(tmp_path, secret_manifest("datadog-cnm-exporter-keys", KEYS), pods) as names:
        assert names == [run_name(f"datadog-cnm-exporter-{i}") for i in range(count)]
        seen = pollers(names, index_label=index_label)
    assert seen == {query: [shard] for query, shard in expected.items()}
