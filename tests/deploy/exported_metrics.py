"""The metric names datadog-cnm-exporter exports: the ONE list the deployment tests (rules,
dashboard) compare against, read from the exporter package itself so it cannot drift."""

from __future__ import annotations

from exporter.catalog import exported_metric_names

EXPORTED_METRIC_NAMES: frozenset[str] = exported_metric_names()

# Series Prometheus itself attaches to every scrape target.
PROMETHEUS_SCRAPE_METRICS: frozenset[str] = frozenset({"up"})
