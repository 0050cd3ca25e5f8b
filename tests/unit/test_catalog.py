"""The metric catalog matches what the exporter really serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from exporter.catalog import data_metric_names, exported_metric_names
from exporter.collectors.connections import ConnectionsJob
from exporter.config.schema import ConnectionsQuery
from exporter.scheduler import ERROR_REASONS
from exporter.selfmetrics import SelfMetrics
from tests.helpers import parse_metrics, render_body


def test_catalog_lists_every_connections_family_a_full_row_renders() -> None:
    attributes = {
        field: 1
        for field in (
            "bytes_sent_by_client",
            "bytes_sent_by_server",
            "packets_sent_by_client",
            "packets_sent_by_server",
            "rtt_micro_seconds",
            "tcp_retransmits",
            "tcp_resets",
            "tcp_rto_count",
            "tcp_timeouts",
            "tcp_refusals",
            "tcp_established_connections",
            "tcp_closed_connections",
            "tcp_delivered_ce",
            "tcp_probe0_count",
            "tcp_rcv_ooo_pack",
            "tcp_recovery_count",
            "tcp_reord_seen",
        )
    }
    body = json.dumps({"data": [{"attributes": attributes}]}).encode()
    rendered = render_body(ConnectionsJob(ConnectionsQuery(name="q")), body)
    names = {item.family.name for item in rendered.families}
    assert len(names) == 17 and names <= data_metric_names()


def test_catalog_lists_every_self_metric_on_metrics() -> None:
    metrics = SelfMetrics()
    metrics.count_response("connections", "200")
    served = {name for name, _ in parse_metrics(metrics.render().decode())}
    assert served <= exported_metric_names()
    assert "datadog_exporter_api_requests_total" in served
    assert not any(name.endswith("_created") for name in served)


def test_every_poll_error_reason_is_listed_in_the_reference() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "reference" / "metrics.md"
    (row,) = [line for line in page.read_text().splitlines() if line.startswith("| `reason` |")]
    listed = set(re.findall(r"`([a-z_]+)`", row.split("|")[2]))
    assert listed == set(ERROR_REASONS)
