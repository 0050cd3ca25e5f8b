"""Benchmarks: the exporter against the prometheus_client way. Run ``python -m benchmarks``."""
