"""The reference: the same answers exported the usual prometheus_client way.

One ``Gauge`` per Datadog field, ``.labels(...).set()`` for every sample of every poll (after
``.clear()``, so vanished rows vanish, as the exporter guarantees), ``generate_latest`` at
scrape time through prometheus_client's own aiohttp handler, all on the event loop, as the
exporters this project learned from do it. It exists only to be measured against.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.aiohttp import make_aiohttp_handler

from exporter.collectors.connections import FIELDS
from exporter.exposition import label_names_for


class ReferenceExporter:
    """Gauges set per sample; rendering happens on every scrape."""

    def __init__(self, group_by: list[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.group_by = group_by
        self.label_names = ["query", *label_names_for(group_by)]
        self.gauges = [
            (attribute, Gauge(family.name, family.help, self.label_names, registry=self.registry))
            for attribute, family in FIELDS
        ]

    def poll(self, names: list[str], body: bytes) -> int:
        """Decode one answer per query name and set every gauge; return the series count."""
        for _, gauge in self.gauges:
            gauge.clear()
        series = 0
        for name in names:
            rows: list[dict[str, Any]] = json.loads(body)["data"]
            for row in rows:
                attributes = row.get("attributes") or {}
                group_bys = attributes.get("group_bys") or {}
                labels = [name, *(",".join(group_bys.get(f) or []) for f in self.group_by)]
                for attribute, gauge in self.gauges:
                    value = attributes.get(attribute)
                    if value is None:
                        continue
                    if attribute == "rtt_micro_seconds":
                        value = value / 1e6
                    gauge.labels(*labels).set(value)
                    series += 1
        return series

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(self.registry))
        return app
