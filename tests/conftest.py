"""Settings of the whole suite's process."""

from __future__ import annotations

from prometheus_client import disable_created_metrics


def pytest_configure() -> None:
    # As the exporter's entry point (cli.main) does once per process: no `_created` series.
    disable_created_metrics()  # type: ignore[no-untyped-call]
