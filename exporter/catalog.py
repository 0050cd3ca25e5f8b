"""Every metric family the exporter can serve, for docs and deployment checks.

DNS metric keys Datadog adds later are exported under derived names that cannot be listed
ahead of time; everything else is here: the data families per collector, in registry order,
and the self-metrics, each with its help, type, labels and what its value is.
"""

from __future__ import annotations

from .collectors.registry import REGISTRY
from .exposition import Family
from .selfmetrics import SELF_FAMILIES, sample_name, self_metric_names

__all__ = ["SELF_FAMILIES", "data_families", "sample_name"]


def data_families() -> list[tuple[str, tuple[Family, ...]]]:
    """(the docs' title of the collector, its families) for every registered collector."""
    return [(entry.title or entry.section, entry.families) for entry in REGISTRY]


def data_metric_names() -> frozenset[str]:
    return frozenset(family.name for entry in REGISTRY for family in entry.families)


def exported_metric_names() -> frozenset[str]:
    return data_metric_names() | self_metric_names()
