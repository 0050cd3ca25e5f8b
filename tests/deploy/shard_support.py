"""The sharded-pod harness, shared by the kustomize variant (test_sharded_pods.py) and the
Helm chart (test_helm_pods.py): a configuration of ten queries, each told apart in the
simulator's request log by its own `limit`; a StatefulSet's pods made the way its
controller makes them (podman cannot play a StatefulSet); and the check that every query
is polled by exactly the shard the rendezvous hash names, each pod having learnt its
shard from what the manifest wires into it.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import yaml

from exporter.sharding import assignment
from tests.deploy.deploy_support import EXPORTER_CONTAINER
from tests.deploy.podman_support import (
    SIMULATOR_CONTAINER,
    SIMULATOR_URL,
    diagnose,
    fetch_inside,
    logs,
    wait_for,
)

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


def owners(count: int) -> dict[tuple[str, str], int]:
    """(collector, query name) -> the shard the rendezvous hash gives it."""
    owned = assignment([("default", c, n) for c, n in sorted(all_queries())], count)
    found = {(c, n): shard for shard, identities in owned.items() for _, c, n in identities}
    assert set(found.values()) == set(range(count)), "every shard owns a query here"
    return found


def pollers(names: list[str], *, index_label: bool) -> dict[tuple[str, str], list[int]]:
    """Which shards polled each query, once every query was polled twice (so a second
    poller would have shown), after checking each pod's sharding log line: its index, the
    count, and where the index came from."""
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
        enough = set(seen) == all_queries() and all(sum(c.values()) >= 2 for c in seen.values())
        return seen if enough else None

    try:
        seen = wait_for("every query polled twice", polls, timeout=90)
        for shard, container in enumerate(exporters):
            event = sharding_log(container)
            assert (event.get("index"), event.get("count")) == (shard, len(names)), event
            expected_source = "EXPORTER_SHARD_INDEX" if index_label else f"POD_NAME={names[shard]}"
            assert event.get("index_from") == expected_source, event
    except BaseException:
        print(diagnose(exporters + simulators))
        raise
    return {query: sorted(counter) for query, counter in seen.items()}
