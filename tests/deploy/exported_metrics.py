"""The metric names datadog-cnm-exporter exports: the ONE list the deployment
tests (rules, dashboard) compare against.

It mirrors the exporter's documented interface. Once the exporter package can
list its own metric names, replace the literal sets below with that call (and
keep the two derived sets at the bottom unchanged).
"""

from __future__ import annotations

CONNECTIONS = frozenset(
    {
        "datadog_cnm_client_sent_bytes",
        "datadog_cnm_server_sent_bytes",
        "datadog_cnm_client_sent_packets",
        "datadog_cnm_server_sent_packets",
        "datadog_cnm_tcp_rtt_seconds",
        "datadog_cnm_tcp_retransmits",
        "datadog_cnm_tcp_resets",
        "datadog_cnm_tcp_retransmission_timeouts",
        "datadog_cnm_tcp_timeouts",
        "datadog_cnm_tcp_refusals",
        "datadog_cnm_tcp_established_connections",
        "datadog_cnm_tcp_closed_connections",
        "datadog_cnm_tcp_delivered_ce_segments",
        "datadog_cnm_tcp_zero_window_probes",
        "datadog_cnm_tcp_out_of_order_packets",
        "datadog_cnm_tcp_fast_recoveries",
        "datadog_cnm_tcp_reorderings",
    }
)

DNS = frozenset(
    {
        "datadog_dns_requests",
        "datadog_dns_failures",
        "datadog_dns_successful_responses",
        "datadog_dns_failed_responses",
        "datadog_dns_timeouts",
        "datadog_dns_nxdomain_responses",
        "datadog_dns_servfail_responses",
        "datadog_dns_other_responses",
        "datadog_dns_success_latency_percentile",
        "datadog_dns_failure_latency_percentile",
    }
)

CASES = frozenset(
    {
        "datadog_cases",
        "datadog_cases_all_groups",
    }
)

AUDIENCE = frozenset(
    {
        "datadog_audience_connection_info",
        "datadog_audience_connection_fields",
        "datadog_audience_connection_created_timestamp_seconds",
        "datadog_audience_connection_updated_timestamp_seconds",
        "datadog_audience_connections",
    }
)

SELF = frozenset(
    {
        "datadog_exporter_up",
        "datadog_exporter_last_success_timestamp_seconds",
        "datadog_exporter_poll_duration_seconds",
        "datadog_exporter_series",
        "datadog_exporter_window_seconds",
        "datadog_exporter_interval_seconds",
        "datadog_exporter_api_requests_total",
        "datadog_exporter_poll_errors_total",
        "datadog_exporter_rate_limit_remaining",
        "datadog_exporter_rate_limit_limit",
        "datadog_exporter_rate_limited_until_timestamp_seconds",
        "datadog_exporter_build_info",
        "datadog_exporter_config_last_reload_successful",
        # Exported beyond the documented interface (exporter/selfmetrics.py).
        "datadog_exporter_serving_stale",
        "datadog_exporter_rate_limit_period_seconds",
    }
)

# prometheus_client's standard process collector (Linux).
PROCESS = frozenset(
    {
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    }
)

EXPORTED_METRIC_NAMES: frozenset[str] = CONNECTIONS | DNS | CASES | AUDIENCE | SELF | PROCESS

# Series Prometheus itself attaches to every scrape target.
PROMETHEUS_SCRAPE_METRICS: frozenset[str] = frozenset({"up"})
