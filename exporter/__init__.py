"""Prometheus exporter for Datadog Cloud Network Monitoring and friends."""

__version__ = "0.1.0"
