"""The names of every metric family the exporter can serve, for docs and deployment checks.

DNS metric keys Datadog adds later are exported under derived names that cannot be listed
ahead of time; everything else is here.
"""

from __future__ import annotations

from .collectors.registry import REGISTRY
from .selfmetrics import self_metric_names


def data_metric_names() -> frozenset[str]:
    return frozenset(family.name for entry in REGISTRY for family in entry.families)


def exported_metric_names() -> frozenset[str]:
    return data_metric_names() | self_metric_names()
