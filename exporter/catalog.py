"""The names of every metric family the exporter can serve, for docs and deployment checks.

DNS metric keys Datadog adds later are exported under derived names that cannot be listed
ahead of time; everything else is here.
"""

from __future__ import annotations

from .collectors import audience, cases, connections, dns
from .selfmetrics import self_metric_names


def data_metric_names() -> frozenset[str]:
    return frozenset(
        family.name for module in (connections, dns, cases, audience) for family in module.FAMILIES
    )


def exported_metric_names() -> frozenset[str]:
    return data_metric_names() | self_metric_names()
