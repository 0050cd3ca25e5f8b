"""Images for the container tests, built once per test session (the base once per
recipe); the terminal summary says what was built or reused, how long it took and how
much the exporter image adds over its base. Every test here is of the ``deploy`` tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.podman_support import (
    Built,
    base_image,
    exporter_image,
    prometheus_image,
    remove_exporter_image,
    require_podman,
)

_BUILT: dict[str, Built] = {}
_HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The deployment files checked with real tools (kustomize, kubernetes-validate, promtool,
    amtool, hadolint, node, Prometheus): a tier of its own, outside the quick ``pytest``."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.deploy)


@pytest.fixture(scope="session")
def base() -> Built:
    require_podman()
    _BUILT["base"] = base_image()
    return _BUILT["base"]


@pytest.fixture(scope="session")
def exporter(base: Built) -> Iterator[Built]:
    """This run's own build of the exporter image (tagged with the run's id), removed
    when the session ends."""
    try:
        _BUILT["exporter"] = exporter_image(base)
        yield _BUILT["exporter"]
    finally:
        remove_exporter_image()


@pytest.fixture(scope="session")
def prometheus(base: Built) -> Built:
    _BUILT["prometheus"] = prometheus_image(base)
    return _BUILT["prometheus"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _BUILT:
        return
    terminalreporter.section("container images")
    for role, built in _BUILT.items():
        how = f"built in {built.seconds:.0f} s" if built.seconds else "reused from the store"
        terminalreporter.write_line(
            f"{role:<11} {built.tag}  {built.size_bytes / 1e6:.1f} MB, {how}"
        )
    if {"base", "exporter"} <= set(_BUILT):
        added = _BUILT["exporter"].size_bytes - _BUILT["base"].size_bytes
        terminalreporter.write_line(f"the exporter image adds {added / 1e6:.1f} MB over its base")
