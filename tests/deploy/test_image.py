"""The image built from the project's Dockerfile runs as a user would run it: read-only
root filesystem, every capability dropped, its own non-root user, `--demo`; it serves
every collector, is ready, and can write nowhere but the /tmp mounted for it. What it
adds over the base stays small: the installed wheels, no build tools, caches or tests."""

from __future__ import annotations

import hashlib
import json
import textwrap
import urllib.request
from collections.abc import Iterator

import pytest

from tests.deploy.deploy_support import REPO
from tests.deploy.podman_support import (
    Built,
    free_port,
    ok,
    podman,
    python_inside,
    run_name,
    samples,
    wait_for,
)

# The first test's set-up builds the images (on a fresh machine a debootstrapped base too):
# longer than the suite's default timeout allows.
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

COLLECTORS = {"connections", "dns", "cases", "audience"}
# The runtime's own IPC mounts, present in every container (in Kubernetes too); they
# belong to no path the exporter uses.
RUNTIME_IPC = {"/dev/shm", "/dev/mqueue"}
# What the project may add on top of the base image: the exporter and its dependencies'
# wheels, installed (a compiler toolchain alone would be over 100 MB, a pip cache of
# these wheels over 10 MB).
MAX_ADDED_BYTES = 40_000_000

# Tries to create a file in every directory of the filesystem (but /proc and /sys).
WRITABLE_DIRECTORIES = textwrap.dedent(
    """
    import json, os
    writable = []
    for path, dirs, _ in os.walk("/"):
        if path in ("/proc", "/sys"):
            dirs[:] = []
            continue
        probe = os.path.join(path, ".write-probe")
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError:
            continue
        os.unlink(probe)
        writable.append(path)
    print(json.dumps(writable))
    """
)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture(scope="module")
def running(exporter: Built) -> Iterator[tuple[str, int]]:
    """The image, started the hardened way, listening on the host's loopback only."""
    port = free_port()
    name = run_name(f"datadog-cnm-exporter-image-test-{port}")
    argv = [
        "run", "--detach", "--name", name, "--network=host",
        "--read-only", "--read-only-tmpfs=false", "--tmpfs=/tmp:rw,size=16m,mode=1777",
        "--cap-drop=ALL", "--security-opt=no-new-privileges",
        exporter.tag, "--demo", f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    try:
        ok(podman(*argv))
        yield name, port
    finally:
        podman("rm", "--force", "--time=2", name)


def test_demo_serves_every_collector_and_is_ready(running: tuple[str, int]) -> None:
    _, port = running

    def all_up() -> dict[str, float] | None:
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        if status != 200:
            return None
        up = {labels["collector"]: value for labels, value in samples(body, "datadog_exporter_up")}
        return up if set(up) == COLLECTORS and all(v == 1 for v in up.values()) else None

    wait_for("every collector up on /metrics", all_up, timeout=60)
    assert get(f"http://127.0.0.1:{port}/-/ready")[0] == 200
    assert get(f"http://127.0.0.1:{port}/-/healthy")[0] == 200


def test_runs_as_the_images_non_root_user_without_capabilities(
    running: tuple[str, int], exporter: Built
) -> None:
    name, _ = running
    user = ok(podman("image", "inspect", "--format", "{{.Config.User}}", exporter.tag)).strip()
    assert user == "65532:65532"
    status = dict(
        line.split(":\t", 1)
        for line in python_inside(name, "print(open('/proc/1/status').read())").splitlines()
        if ":\t" in line
    )
    assert "datadog-cnm-exporter" in python_inside(name, "print(open('/proc/1/cmdline').read())")
    assert status["Uid"].split() == ["65532"] * 4
    assert status["Gid"].split() == ["65532"] * 4
    for capabilities in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, capabilities
    assert status["NoNewPrivs"].strip() == "1"


def test_nothing_is_writable_but_the_mounted_tmp(running: tuple[str, int]) -> None:
    name, _ = running
    writable = set(json.loads(python_inside(name, WRITABLE_DIRECTORIES)))
    assert writable - RUNTIME_IPC == {"/tmp"}


@pytest.mark.parametrize("package", ["exporter", "simulator"])
def test_the_image_holds_this_checkouts_packages(exporter: Built, package: str) -> None:
    """Every source file of both packages (the exporter and the simulator --demo serves),
    installed byte for byte (a stale layer cache would serve an older checkout's wheels)."""
    listing = textwrap.dedent(
        f"""
        import hashlib, json, pathlib
        root = pathlib.Path("/usr/local/lib/python3.11/dist-packages/{package}")
        print(json.dumps({{str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                          for p in sorted(root.rglob("*")) if p.suffix in (".py", ".yml")}}))
        """
    )
    installed = json.loads(
        ok(podman("run", "--rm", "--entrypoint=python", exporter.tag, "-c", listing))
    )
    source = REPO / package
    checkout = {
        str(p.relative_to(source)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(source.rglob("*"))
        if p.suffix in (".py", ".yml") and "__pycache__" not in p.parts
    }
    assert installed == checkout


def test_the_image_adds_only_the_installed_wheels(base: Built, exporter: Built) -> None:
    added = exporter.size_bytes - base.size_bytes
    assert added <= MAX_ADDED_BYTES, (
        f"image {exporter.size_bytes:,} B, base {base.size_bytes:,} B: adds {added:,} B"
    )
    inventory = textwrap.dedent(
        """
        import json, os, shutil, sysconfig
        site = sysconfig.get_paths()["purelib"]
        print(json.dumps({
            "tools": [t for t in ("gcc", "cc", "make", "git", "curl") if shutil.which(t)],
            "caches": [p for p in ("/root/.cache", "/.cache", "/tmp/pip", "/wheels", "/src")
                       if os.path.exists(p)],
            "site": sorted(os.listdir("/usr/local/lib/python3.11/dist-packages")),
        }))
        """
    )
    found = json.loads(
        ok(podman("run", "--rm", "--entrypoint=python", exporter.tag, "-c", inventory))
    )
    assert found["tools"] == [], "no build tools in the image"
    assert found["caches"] == [], "no pip cache, wheels or source tree left behind"
    assert {"exporter", "simulator"} <= set(found["site"])
    assert not {"tests", "benchmarks"} & set(found["site"]), "no tests or benchmarks installed"
