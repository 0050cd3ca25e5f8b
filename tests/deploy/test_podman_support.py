"""The container tests' names are their run's own (no podman needed to check it): two
suites on one machine get different image tags, pod, secret and volume names."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from tests.deploy.deploy_support import REPO
from tests.deploy.podman_support import EXPORTER_IMAGE, RUN_ID, per_run, play_names


def test_each_process_has_its_own_run_id() -> None:
    code = "from tests.deploy.podman_support import RUN_ID, EXPORTER_IMAGE; print(EXPORTER_IMAGE)"
    images = {
        subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(images) == 2 and EXPORTER_IMAGE not in images
    assert EXPORTER_IMAGE.endswith(f":test-{RUN_ID}")


def test_per_run_renames_what_podman_names_and_the_references_to_it() -> None:
    secret: dict[str, Any] = {"kind": "Secret", "metadata": {"name": "keys"}, "data": {}}
    config_map: dict[str, Any] = {"kind": "ConfigMap", "metadata": {"name": "config"}, "data": {}}
    pod_spec: dict[str, Any] = {
        "containers": [],
        "volumes": [
            {"name": "c", "configMap": {"name": "config"}},
            {"name": "k", "secret": {"secretName": "keys"}},
            {"name": "other", "configMap": {"name": "made-elsewhere"}},
        ],
    }
    deployment: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "exporter"},
        "spec": {"template": {"spec": pod_spec}},
    }
    pod: dict[str, Any] = {"kind": "Pod", "metadata": {"name": "exporter-2"}, "spec": pod_spec}
    renamed_secret, docs = per_run(secret, [config_map, deployment, pod])
    prefix = f"t{RUN_ID}-"
    assert renamed_secret["metadata"]["name"] == f"{prefix}keys"
    assert [d["metadata"]["name"] for d in docs] == [
        f"{prefix}config",
        f"{prefix}exporter",
        f"{prefix}exporter-2",  # the StatefulSet ordinal stays last
    ]
    for doc in docs[1:]:
        spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["c"]["configMap"]["name"] == f"{prefix}config"
        assert volumes["k"]["secret"]["secretName"] == f"{prefix}keys"
        assert volumes["other"]["configMap"]["name"] == "made-elsewhere"
    assert play_names(docs) == [f"{prefix}exporter-pod-0", f"{prefix}exporter-2"]
    assert secret["metadata"]["name"] == "keys", "the caller's documents are left alone"
