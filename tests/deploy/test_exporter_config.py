"""The exporter configuration the manifests and the image ship is one the
installed exporter accepts (`--config.check`)."""

from __future__ import annotations

from tests.deploy.deploy_support import KUSTOMIZE, describe, run, tool

SHIPPED_CONFIG = KUSTOMIZE / "base" / "config.yml"


def test_shipped_config_passes_config_check() -> None:
    proc = run(
        [tool("datadog-cnm-exporter"), "--config.file", str(SHIPPED_CONFIG), "--config.check"]
    )
    assert proc.returncode == 0, describe(proc)
    assert "configuration OK" in proc.stdout
    for collector in ("connections", "dns", "cases", "audience"):
        assert collector in proc.stdout
