"""Images for the container tests, built once per test session (the base once per recipe)."""

from __future__ import annotations

import pytest
from podman_support import Built, base_image, exporter_image, prometheus_image, require_podman


@pytest.fixture(scope="session")
def base() -> Built:
    require_podman()
    return base_image()


@pytest.fixture(scope="session")
def exporter(base: Built) -> Built:
    return exporter_image(base)


@pytest.fixture(scope="session")
def prometheus(base: Built) -> Built:
    return prometheus_image(base)
