"""A bare 400's hint travels on the request its job builds (the HTTP client reads it there,
knowing nothing of collectors): the registry's CNM endpoints carry the CNM hint, the others
none."""

from __future__ import annotations

import yaml

from exporter.collectors.protocol import NO_CNM_HINT
from exporter.collectors.registry import REGISTRY, configured_jobs
from exporter.config.schema import parse_config
from tests.helpers import EXAMPLE_QUERIES


def test_the_cnm_endpoints_requests_carry_the_cnm_hint_and_no_other_does() -> None:
    queries = {entry.section: [EXAMPLE_QUERIES[entry.section]] for entry in REGISTRY}
    config = parse_config(yaml.safe_dump(queries))
    jobs = {job.collector: job for job in configured_jobs(config)}
    for entry in REGISTRY:
        hint = jobs[entry.section].request(1_700_000_000.0).bare_400_hint
        assert hint == (NO_CNM_HINT if entry.cnm else None), entry.section
