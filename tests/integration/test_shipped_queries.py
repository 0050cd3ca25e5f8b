"""Every query the project ships — the demo, the Kubernetes configuration (which the
kube-prometheus-stack values mount too), the Helm chart's and the examples in the docs —
returns rows against the simulator, with every group_by field resolved: an example that
matches nothing teaches a new user that silence is health."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from exporter.collectors.protocol import QueryJob
from exporter.collectors.registry import BY_SECTION, configured_jobs
from exporter.config.schema import Config, parse_config
from exporter.datadog.client import DatadogClient

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = tuple(BY_SECTION)
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.DOTALL | re.MULTILINE)


def shipped_configs() -> dict[str, str]:
    """Every shipped exporter configuration (files and YAML blocks of the docs) holding
    queries, by where it is; only its query sections and accounts (the datadog: block of an
    annotated example names files that exist only on the reader's machine)."""
    found: dict[str, str] = {}
    files = [ROOT / "exporter" / "demo.yml", *sorted((ROOT / "deploy").rglob("*.y*ml"))]
    texts = [(str(path.relative_to(ROOT)), path.read_text()) for path in files]
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for number, block in enumerate(_YAML_BLOCK.findall(page.read_text())):
            texts.append((f"{page.relative_to(ROOT)} block {number + 1}", block))
    for where, text in texts:
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
        for document in documents:
            config = document
            if isinstance(document, dict) and isinstance(document.get("config"), dict):
                config = document["config"]  # a Helm chart's values: the file it renders
            if isinstance(config, dict) and set(config) & set(SECTIONS):
                kept = (*SECTIONS, "accounts")  # accounts: the names queries refer to
                queries = {key: config[key] for key in kept if key in config}
                found[where] = yaml.safe_dump(queries)
    return found


SHIPPED = shipped_configs()


def test_the_shipped_configurations_are_found() -> None:
    assert "exporter/demo.yml" in SHIPPED
    assert "deploy/kubernetes/base/config.yml" in SHIPPED
    # The Helm chart's default is deploy/kubernetes/base/config.yml, read through a link
    # (tests/deploy/test_helm_chart.py); its values.yaml holds no queries.
    assert any(where.startswith("docs/configuration.md") for where in SHIPPED)


def jobs_of(where: str) -> list[QueryJob]:
    config: Config = parse_config(SHIPPED[where], where)
    return list(configured_jobs(config))


@pytest.mark.parametrize("where", sorted(SHIPPED))
async def test_every_shipped_query_returns_rows_with_every_field_resolved(
    client: DatadogClient, where: str
) -> None:
    empty = []
    for job in jobs_of(where):
        rendered = job.render(job.decode(await client.fetch(job.request(time.time()))))
        unresolved = [field for field, no in rendered.group_by_unresolved if no]
        if rendered.rows == 0 or unresolved:
            empty.append(f"{job.collector}/{job.name}: rows={rendered.rows} {unresolved=}")
    assert not empty, f"{where}: {empty}"


def test_the_shipped_open_cases_query_spells_the_status_as_datadog_answers_it() -> None:
    """The DatadogOpenCasesAboveThreshold alert reads open_by_priority: its filter must use
    the status enum's spelling (OPEN), which the simulator matches exactly."""
    for where in (
        "exporter/demo.yml",
        "deploy/kubernetes/base/config.yml",
    ):
        (query,) = [j for j in jobs_of(where) if j.name == "open_by_priority"]
        assert query.request(0).json_body["data"]["attributes"]["query_filter"] == "status:OPEN"
