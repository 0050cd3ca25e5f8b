"""The Datadog side: the HTTP client and its error hierarchy, rate-limit state (ratelimit.py,
its one owner) and budgeting policy, the credentials, egress (proxies, CAs) and one client
per account."""
