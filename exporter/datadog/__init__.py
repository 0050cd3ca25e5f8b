"""The Datadog side: the HTTP client and its error hierarchy, rate-limit budgeting, the
credentials, egress (proxies, CAs) and one client per account."""
