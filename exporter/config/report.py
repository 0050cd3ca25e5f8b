"""What ``--config.check`` prints: the queries, the API calls they cost, who polls them.

Calls per hour are computed here and nowhere else (:func:`per_hour` and the two built on
it), for the budget per account and endpoint, for the comparison with ``datadog.rate_limits``,
for the shard table, and for the backfill's plan, announcements and summary. Pure: a
validated configuration in, text out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from ..durations import format_duration
from ..sharding import ShardKey, assignment
from .schema import Config, RateLimitExpectation, query_endpoints, query_sections

# The width of the collector and endpoint columns: the longest name (network_health), so
# the columns after it line up.
COLUMN = max(12, *(len(name) for name in (*query_sections(Config), *query_endpoints(Config))))

UNKNOWN_LIMIT_NOTE = (
    "Rate limits are unknown before Datadog answers: it publishes no numbers and sends them "
    "in X-RateLimit-* headers (see datadog_exporter_rate_limit_limit once running). Set "
    "datadog.rate_limits to compare against a limit you know."
)


def per_hour(count: float, seconds: float) -> float:
    """``count`` calls in ``seconds``, as calls per hour (0 when no time passed)."""
    return count * 3600.0 / seconds if seconds else 0.0


def calls_per_hour(interval: float) -> float:
    """The scheduled API calls per hour of one query polled every ``interval`` seconds
    (retries not included)."""
    return per_hour(1, interval)


def limit_per_hour(limit: int, period: float) -> float:
    """A rate limit of ``limit`` calls per ``period`` seconds, in calls per hour."""
    return per_hour(limit, period)


def budget_note(calls: float, expected: RateLimitExpectation | None) -> str:
    """How ``calls`` per hour compare with the limit expected for their endpoint."""
    if expected is None:
        return "limit unknown"
    allowed = limit_per_hour(expected.limit, expected.period)
    share = calls / allowed
    verdict = "  OVER THE LIMIT: polls will be paced and skipped" if share > 1 else ""
    return (
        f"of {round(allowed)} allowed ({expected.limit} per "
        f"{format_duration(expected.period)}): {share:.0%}{verdict}"
    )


def summary(
    config: Config,
    shard_count: int | None = None,
    *,
    routes: Sequence[str] = (),
    warnings: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """The report: the queries, the API calls they cost per hour per account and endpoint,
    with a shard count which replica polls which query; then ``routes`` (where each
    account's requests go, one line each), ``warnings`` and ``notes``."""
    lines = []
    calls: dict[tuple[str, str], float] = defaultdict(float)
    for collector, query in config.all_queries():
        account = config.account_of(query)
        calls[(account, query.endpoint)] += calls_per_hour(query.interval)
        lines.append(
            f"  {collector:<{COLUMN}} {query.name:<30} every {format_duration(query.interval):<8}"
            f" account {account}"
        )
    head = f"configuration OK: {len(lines)} queries"
    attempts = config.datadog.max_attempts
    budget = [
        "API calls per hour, per account and endpoint: the scheduled polls, and (at worst) "
        f"with every poll failing and retried, datadog.max_attempts={attempts} calls per poll:"
    ]
    for (account, endpoint), count in sorted(calls.items()):
        worst = f"(at worst {round(count * attempts)})"
        line = f"  {account:<12} {endpoint:<{COLUMN}} {round(count):<8} {worst:<18} "
        budget.append(line + budget_note(count, config.datadog.rate_limits.get(endpoint)))
    if not config.datadog.rate_limits:
        budget.append(UNKNOWN_LIMIT_NOTE)
    out = [head, *lines, *budget]
    if shard_count is not None:
        queries = [
            ((config.account_of(q), collector, q.name), q.interval)
            for collector, q in config.all_queries()
        ]
        out.append(assignment_report(queries, shard_count))
    if routes:
        out.append("Datadog API, per account (base URL, the setting that chose it, proxy):")
        out += [f"  {line}" for line in routes]
    out += [f"warning: {line}" for line in warnings]
    out += [f"note: {line}" for line in notes]
    return "\n".join(out)


def assignment_report(queries: Iterable[tuple[ShardKey, float]], count: int) -> str:
    """What ``--config.check --shard.count N`` adds: who polls what, and what it costs.

    ``queries`` holds each query's key and polling interval in seconds.
    """
    intervals = dict(queries)
    owned = assignment(list(intervals), count)
    lines = [f"shard assignment over {count} replicas (rendezvous hashing):"]
    for shard, keys in owned.items():
        lines.append(f"  shard {shard}: {len(keys)} queries")
        lines += [
            f"    {account:<12} {collector:<{COLUMN}} {name}" for account, collector, name in keys
        ]
    lines.append("API calls per hour, per shard and account:")
    for shard, keys in owned.items():
        calls: dict[tuple[str, str], float] = defaultdict(float)
        for key in keys:
            account, collector, _ = key
            calls[(account, collector)] += calls_per_hour(intervals[key])
        if not calls:
            lines.append(f"  shard {shard:<4} (nothing to poll)")
        lines += [
            f"  shard {shard:<4} {account:<12} {collector:<{COLUMN}} {round(count_)}"
            for (account, collector), count_ in sorted(calls.items())
        ]
    return "\n".join(lines)
