"""podman for the container tests: the project's own podman configuration, the images
(bootstrapped base, the project's Dockerfile, a Prometheus stand-in) and pods played
from rendered manifests, always torn down.

Images: no registry image can be pulled, so the base (a stand-in for
python:3.11-slim-bookworm) is bootstrapped from Debian's packages by
`podman/base-image.sh` and kept in podman's image store under a tag derived from
a hash of that script; later runs on the same machine reuse it. The exporter
image is built from the unchanged `Dockerfile` with only `PYTHON_IMAGE` set.

Names: the exporter image, pods, podman secrets and volumes carry this run's RUN_ID, so
two suites on one machine never meet; only the base and Prometheus images, read-only
content named by their recipe's hash, are shared, built under a lock by whichever run
comes first.

Traffic: the tests talk to 127.0.0.1 only. A standalone container runs on the
host's network, listening on loopback; a pod has its own network namespace, so
the tests look from inside it (`podman exec ... python`) at the pod's loopback,
never at the pod's bridge address.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.deploy_support import REPO, missing, tool

HERE = Path(__file__).resolve().parent / "podman"
CONTAINERS_CONF = HERE / "containers.conf"
BASE_RECIPE = HERE / "base-image.sh"
PROMETHEUS_RECIPE = HERE / "prometheus.Containerfile"

BASE_REPOSITORY = "localhost/datadog-cnm-exporter-test-base"
PROMETHEUS_REPOSITORY = "localhost/datadog-cnm-exporter-test-prometheus"
# This test run's own names (see the module's docstring).
RUN_ID = secrets.token_hex(4)
EXPORTER_IMAGE = f"localhost/datadog-cnm-exporter:test-{RUN_ID}"
# What the manifests name; the test overlays point them at the local builds.
SHIPPED_EXPORTER_IMAGE = "ghcr.io/datadog-cnm-exporter/datadog-cnm-exporter"
SHIPPED_PROMETHEUS_IMAGE = "quay.io/prometheus/prometheus"

# pip inside the build reaches PyPI only with the machine's CA bundle and pip settings.
BUILD_MOUNTS = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")


def _environment() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run podman with the project's configuration; never raises on a non-zero exit."""
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_environment(),
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout of a podman call that must have succeeded."""
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return proc.stdout


def require_podman() -> None:
    """Skip locally, fail in CI, unless podman can build and run containers here."""
    for name in ("podman", "runc", "debootstrap"):
        if shutil.which(name) is None:
            missing(f"{name} is not installed (apt: podman runc catatonit debootstrap)")
    if os.geteuid() != 0:
        missing("the container tests bootstrap a base image with debootstrap: run as root")
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", timeout=60)
    if info.returncode != 0 or info.stdout.strip() != "runc":
        missing(f"podman cannot run here: {info.stderr.strip() or info.stdout.strip()}")


def debian_mirror() -> str:
    """The machine's own Debian mirror: the URIs of its bookworm suite in the apt sources
    (never a host name written into the repository)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(
                line.split(":", 1)
                for line in stanza.splitlines()
                if re.match(r"^[A-Za-z-]+:", line)
            )
            if "bookworm" in fields.get("Suites", "").split():
                return fields["URIs"].split()[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if match:
                return match.group(1)
    pytest.fail("no Debian bookworm mirror in the machine's apt sources")


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:12]


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag).returncode == 0


@dataclass(frozen=True)
class Built:
    tag: str
    seconds: float  # 0 when reused from the image store
    size_bytes: int


def image_size(tag: str) -> int:
    return int(ok(podman("image", "inspect", "--format", "{{.Size}}", tag)).strip())


def run_name(name: str) -> str:
    """`name` made this run's own; a prefix, so a StatefulSet pod's ordinal stays last."""
    return f"t{RUN_ID}-{name}"


@contextlib.contextmanager
def image_lock(tag: str) -> Iterator[None]:
    """Held while a shared image is looked up and, if missing, built: a second suite
    starting at the same time waits for the first one's build and then reuses it."""
    path = Path("/var/tmp") / f"datadog-cnm-exporter-image-{_digest(tag.encode())}.lock"
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def base_image() -> Built:
    """The bootstrapped Python base, built only when the store lacks this recipe's tag."""
    tag = f"{BASE_REPOSITORY}:{_digest(BASE_RECIPE.read_bytes())}"
    with image_lock(tag):
        return _base_image(tag)


def _base_image(tag: str) -> Built:
    started = time.monotonic()
    if not image_exists(tag):
        proc = subprocess.run(
            ["bash", str(BASE_RECIPE), tag, debian_mirror()],
            capture_output=True,
            text=True,
            timeout=900,
            env=_environment(),
            check=False,
        )
        ok(proc)
        elapsed = time.monotonic() - started
    else:
        elapsed = 0.0
    return Built(tag, elapsed, image_size(tag))


# Every image the tests build carries this label, so leftovers are found as ours alone,
# and this run's builds the run's own (another suite's build stages are not ours to prune).
TEST_LABEL = "io.datadog-cnm-exporter.test=true"
RUN_LABEL = f"io.datadog-cnm-exporter.test-run={RUN_ID}"


def _build(tag: str, context: Path, build_args: dict[str, str], *extra: str) -> float:
    mounts = [f"-v={path}:{path}:ro" for path in BUILD_MOUNTS if Path(path).exists()]
    args = [f"--build-arg={key}={value}" for key, value in build_args.items()]
    started = time.monotonic()
    labels = [f"--label={TEST_LABEL}", f"--label={RUN_LABEL}"]
    argv = ["build", "--network=host", *labels, *mounts, *args, *extra]
    ok(podman(*argv, "-t", tag, str(context), timeout=900))
    return time.monotonic() - started


def exporter_image(base: Built) -> Built:
    """The project's Dockerfile, unchanged but for PYTHON_IMAGE, built from this checkout.

    Without podman's layer cache: buildah 1.28 keys the runtime stage's `RUN
    --mount=type=bind,from=build` by the instruction's text alone, so a cached build
    would keep serving the wheels of an older checkout. The untagged leftovers of this
    run's build (its build stage) are removed afterwards; the image itself by
    remove_exporter_image() when the session ends.
    """
    seconds = _build(EXPORTER_IMAGE, REPO, {"PYTHON_IMAGE": base.tag}, "--no-cache")
    podman("image", "prune", "--force", f"--filter=label={RUN_LABEL}")
    return Built(EXPORTER_IMAGE, seconds, image_size(EXPORTER_IMAGE))


def remove_exporter_image() -> None:
    podman("rmi", "--force", EXPORTER_IMAGE)
    podman("image", "prune", "--force", f"--filter=label={RUN_LABEL}")


def prometheus_image(base: Built) -> Built:
    """Prometheus from Debian's package on the same base; reused while recipe and base stay."""
    tag = f"{PROMETHEUS_REPOSITORY}:{_digest(PROMETHEUS_RECIPE.read_bytes(), base.tag.encode())}"
    seconds = 0.0
    with image_lock(tag):
        if not image_exists(tag):
            seconds = _build(tag, HERE, {"BASE_IMAGE": base.tag}, f"--file={PROMETHEUS_RECIPE}")
    return Built(tag, seconds, image_size(tag))


# --- looking from inside a container -------------------------------------------

_FETCH = textwrap.dedent(
    """
    import json, sys, urllib.error, urllib.request
    url, method, body = sys.argv[1], sys.argv[2], sys.argv[3]
    request = urllib.request.Request(
        url, method=method, data=body.encode() if body else None,
        headers={"Content-Type": "application/json"} if body else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    except OSError as exc:  # not listening (yet): no status
        status, text = 0, str(exc)
    print(json.dumps({"status": status, "body": text}))
    """
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def fetch_inside(container: str, url: str, *, method: str = "GET", body: Any = None) -> Answer:
    """An HTTP request made by python inside `container` (to the pod's own loopback);
    status 0 when nothing answers."""
    assert url.startswith("http://127.0.0.1:"), "only the container's loopback"
    payload = "" if body is None else json.dumps(body)
    proc = podman("exec", container, "python", "-c", _FETCH, url, method, payload, timeout=60)
    answer = json.loads(ok(proc))
    return Answer(answer["status"], answer["body"])


def python_inside(container: str, code: str) -> str:
    """stdout of `python -c code` run inside `container` as its own user."""
    return ok(podman("exec", container, "python", "-c", code, timeout=60))


def wait_for(what: str, check: Any, *, timeout: float, every: float = 1.0) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(every)


# --- pods played from manifests -------------------------------------------------

# Where the test overlays run the simulator inside a pod, standing in for Datadog.
SIMULATOR_PORT = 8080
SIMULATOR_URL = f"http://127.0.0.1:{SIMULATOR_PORT}"
SIMULATOR_CONTAINER = "datadog-simulator"


def image_overrides(prometheus: Built | None = None) -> list[dict[str, str]]:
    """kustomize `images:` pointing the manifests' image names at the local builds."""
    repository, _, tag = EXPORTER_IMAGE.rpartition(":")
    images = [{"name": SHIPPED_EXPORTER_IMAGE, "newName": repository, "newTag": tag}]
    if prometheus is not None:
        repository, _, tag = prometheus.tag.rpartition(":")
        images.append({"name": SHIPPED_PROMETHEUS_IMAGE, "newName": repository, "newTag": tag})
    return images


def simulator_container(api_key: str, app_key: str) -> dict[str, Any]:
    """The Datadog simulator (shipped in the exporter image) as one more container of a
    pod, on the pod's loopback, accepting exactly these keys."""
    return {
        "name": SIMULATOR_CONTAINER,
        "image": EXPORTER_IMAGE,
        "command": ["python", "-m", "simulator"],
        "args": [
            f"--listen=127.0.0.1:{SIMULATOR_PORT}",
            f"--api-key={api_key}",
            f"--app-key={app_key}",
        ],
    }


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a test overlay, which may name files outside its directory."""
    proc = subprocess.run(
        [tool("kubectl"), "kustomize", "--load-restrictor=LoadRestrictionsNone", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
    return spec


def for_podman(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What podman 4.3 needs to play rendered manifests, changing nothing they mean:

    - a `secret:` volume without `optional:` crashes it: say `optional: false`;
    - it publishes every containerPort on the host's 0.0.0.0 (Kubernetes publishes
      none): pin each to a free port on the host's 127.0.0.1.
    """
    docs = copy.deepcopy(docs)
    for doc in docs:
        if doc["kind"] not in ("Pod", "Deployment"):
            continue
        spec = pod_spec(doc)
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                volume["secret"].setdefault("optional", False)
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for port in container.get("ports", []):
                port["hostIP"] = "127.0.0.1"
                port["hostPort"] = free_port()
    return docs


def secret_manifest(name: str, values: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": {key: base64.b64encode(v.encode()).decode() for key, v in values.items()},
    }


def secret_file_text(value: str) -> str:
    """What a Secret volume's file holds under `podman kube play` 4.3: the base64 text of
    the value, not the value (Kubernetes would write the value itself)."""
    return base64.b64encode(value.encode()).decode()


def play_names(docs: Sequence[dict[str, Any]]) -> list[str]:
    """The pod names `podman kube play` gives these documents' workloads."""
    names = []
    for doc in docs:
        if doc["kind"] == "Pod":
            names.append(doc["metadata"]["name"])
        elif doc["kind"] == "Deployment":
            names.append(f"{doc['metadata']['name']}-pod-0")
    return names


def per_run(
    secret: dict[str, Any], docs: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Secret and the documents with this run's names (run_name): workloads, the
    ConfigMaps and the Secret, and the pods' references to them. podman names pods,
    containers, its secrets and the volumes it makes for ConfigMaps after these."""
    secret = copy.deepcopy(secret)
    renamed = {}
    for doc in [secret, *docs]:
        if doc["kind"] in ("ConfigMap", "Secret"):
            renamed[doc["metadata"]["name"]] = run_name(doc["metadata"]["name"])
    secret["metadata"]["name"] = renamed[secret["metadata"]["name"]]
    result = copy.deepcopy(list(docs))
    for doc in result:
        if doc["kind"] in ("ConfigMap", "Pod", "Deployment"):
            doc["metadata"]["name"] = run_name(doc["metadata"]["name"])
        if doc["kind"] not in ("Pod", "Deployment"):
            continue
        for volume in pod_spec(doc).get("volumes", []):
            if "configMap" in volume:
                name = volume["configMap"]["name"]
                volume["configMap"]["name"] = renamed.get(name, name)
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                volume["secret"]["secretName"] = renamed.get(name, name)
    return secret, result


@contextlib.contextmanager
def played(
    directory: Path, secret: dict[str, Any], docs: Sequence[dict[str, Any]]
) -> Iterator[list[str]]:
    """Play the Secret, then the rest, under this run's names (per_run); yield the pod
    names; always tear everything down (pods, the Secret, and the volumes podman made for
    the ConfigMaps and the Secret).

    podman 4.3 needs the Secret played on its own before the pods that mount it.
    """
    secret, docs = per_run(secret, docs)
    secret_file = directory / "secret.yaml"
    pods_file = directory / "pods.yaml"
    secret_file.write_text(yaml.safe_dump(secret))
    pods_file.write_text(yaml.safe_dump_all(docs))
    pods = play_names(docs)
    volumes = [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"]
    volumes.append(secret["metadata"]["name"])
    try:
        # A volume left by an interrupted run of the same name would shadow the data.
        for volume in volumes:
            podman("volume", "rm", "--force", volume)
        ok(podman("kube", "play", str(secret_file)))
        ok(podman("kube", "play", str(pods_file), timeout=300))
        yield pods
    finally:
        podman("kube", "down", str(pods_file), timeout=120)
        for pod in pods:
            podman("pod", "rm", "--force", "--time=2", pod, timeout=120)
        podman("secret", "rm", secret["metadata"]["name"])
        for volume in volumes:
            podman("volume", "rm", "--force", volume)


def logs(container: str) -> str:
    proc = podman("logs", container)
    return proc.stdout + proc.stderr


def diagnose(containers: Sequence[str]) -> str:
    """The last log lines of each container, for a failure message."""
    return "\n".join(
        f"--- {name}\n" + "\n".join(logs(name).splitlines()[-20:]) for name in containers
    )


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called `name` in an exposition."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]
