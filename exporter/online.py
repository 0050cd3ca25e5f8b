"""``--config.check.online``: ask Datadog, before deploying, whether the keys, the site and the
permissions are right for every endpoint the configuration polls.

Per account: one ``GET /api/v1/validate`` (the API key), then one cheap call per endpoint that
has a configured query (the account's first query of that endpoint, ``limit`` 1 where the
endpoint takes one). Never more: :func:`planned_calls` is what the report announces. The
calls go through the exporter's own client (proxy, TLS trust, redaction), so what passes here
is what the running exporter will meet.

:func:`answer_signals` reads an answer for the report through the collector's own decode and
render, so its rows and N/A fields are the live poll's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .clock import SYSTEM_CLOCK, Clock
from .collectors.protocol import ApiRequest, DecodeError, QueryJob
from .collectors.registry import REGISTRY, ApiArea
from .config.accounts import Account
from .config.report import COLUMN
from .config.schema import Config, PolledQuery
from .datadog.client import DatadogClient, RequestFailed
from .datadog.credentials import CredentialsError
from .datadog.pool import ClientPool, PoolBuilder, Route
from .durations import format_duration

VALIDATE = ApiRequest("validate", "GET", "/api/v1/validate")
OK = "OK"


@dataclass(frozen=True)
class Probe:
    """One call of the check and what came of it."""

    endpoint: str
    query: str  # collector/name of the query it stands for ("" for validate)
    status: str  # OK, or the reason (unauthorized, forbidden, timeout, ...)
    detail: str = ""  # the error line and its hint; for OK, what the answer held
    limit: int | None = None  # the X-RateLimit-* headers Datadog sent with it
    period: float | None = None
    remaining: int | None = None
    rows: int | None = None
    na_fields: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass
class AccountCheck:
    route: Route
    probes: list[Probe] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # endpoints not called, and why


def probed_queries(config: Config, account: str) -> list[tuple[ApiArea, PolledQuery]]:
    """The account's first query of each endpoint, in the registry's order."""
    found = []
    for entry in REGISTRY:
        mine = [q for q in getattr(config, entry.section) if config.account_of(q) == account]
        if mine:
            found.append((entry, cheap(mine[0])))
    return found


def cheap(query: PolledQuery) -> PolledQuery:
    """The query asking for one row where the endpoint takes a ``limit``."""
    if "limit" in type(query).model_fields:
        return query.model_copy(update={"limit": 1})
    return query


def planned_calls(config: Config, accounts: Sequence[Account]) -> int:
    """The most calls the check makes: one validate plus one per probed endpoint, per account."""
    return sum(1 + len(probed_queries(config, a.name)) for a in accounts)


def answer_signals(job: QueryJob, body: bytes) -> tuple[int, tuple[str, ...]]:
    """The rows of a 200 answer and the group_by fields no row of it resolved, read by the
    collector's own decode and render: the report says what the live poll will say
    (``datadog_exporter_answer_rows``, ``datadog_exporter_group_by_unresolved``).

    Raises DecodeError for an answer the collector cannot use.
    """
    rendered = job.render(job.decode(body))
    unresolved = tuple(name for name, none in rendered.group_by_unresolved if none)
    return rendered.rows, unresolved


async def check_online(
    config: Config,
    accounts: Sequence[Account],
    builder: PoolBuilder,
    routes: Sequence[Route],
    clock: Clock = SYSTEM_CLOCK,
) -> list[AccountCheck]:
    """Validate each account's API key, then call each endpoint with a configured query once,
    through a pool of ``builder``'s (each account's keys read as they are at start-up).

    Endpoints are not called after the key check failed (refused, unreachable): they would
    fail the same way, and every call counts against the organisation's rate limits.
    """
    pool = ClientPool(builder.redactor, builder.proxies(), lambda endpoint, code, account: None)
    try:
        return await _check_accounts(config, accounts, pool, builder, routes, clock=clock)
    finally:
        await pool.close()


async def _check_accounts(
    config: Config,
    accounts: Sequence[Account],
    pool: ClientPool,
    builder: PoolBuilder,
    routes: Sequence[Route],
    *,
    clock: Clock,
) -> list[AccountCheck]:
    checks = []
    for account, route in zip(accounts, routes, strict=True):
        check = AccountCheck(route)
        checks.append(check)
        queries = probed_queries(config, account.name)
        try:
            credentials = builder.credentials([account])
        except CredentialsError as exc:
            check.probes.append(Probe("validate", "", "credentials", str(exc)))
            check.skipped = [f"{entry.endpoint}: not called (no keys)" for entry, _ in queries]
            continue
        pool.apply([account], credentials)
        client = pool.clients[account.name]
        validate, _ = await _call(client, VALIDATE)
        check.probes.append(validate)
        if not validate.ok:
            check.skipped = [
                f"{entry.endpoint}: not called (the key check failed)" for entry, _ in queries
            ]
            continue
        for entry, query in queries:
            job = entry.job(query, account.name, config.account_label)
            probe, body = await _call(client, job.request(clock.wall()))
            probe = replace(probe, query=f"{entry.section}/{query.name}")
            if body is not None:
                probe = _read_answer(probe, job, body)
            check.probes.append(probe)
    return checks


async def _call(client: DatadogClient, request: ApiRequest) -> tuple[Probe, bytes | None]:
    """One call: its probe (with the rate-limit headers it brought) and the body if 2xx."""
    endpoint = request.endpoint
    body: bytes | None = None
    try:
        body = await client.fetch(request)
        probe = Probe(endpoint, "", OK)
    except RequestFailed as exc:
        # A 401 or 403 says unauthorized/forbidden and carries the hint the live poll's
        # failure line carries (datadog.rejections): the key, the site, the permission.
        probe = Probe(endpoint, "", exc.reason, str(exc))
    state = client.rate_limits.limits(endpoint)
    return replace(probe, limit=state.limit, period=state.period, remaining=state.remaining), body


def _read_answer(probe: Probe, job: QueryJob, body: bytes) -> Probe:
    """The rows of a 200 answer and its N/A group_by fields; an unusable one is a failure."""
    try:
        rows, unresolved = answer_signals(job, body)
    except DecodeError as exc:
        return replace(probe, status="decode_error", detail=f"{probe.endpoint}: {exc}")
    return replace(probe, rows=rows, na_fields=unresolved)


def render(checks: Sequence[AccountCheck], planned: int) -> tuple[str, bool]:
    """The report, and whether every endpoint (and every key check) answered 200."""
    lines = [
        f"online check: {planned} calls at most (per account one key validation plus one call "
        "per endpoint with a configured query, limit 1 where it takes one)"
    ]
    answered = total = 0
    for check in checks:
        lines.append(f"account {check.route.account}:")
        for probe in check.probes:
            lines.append("  " + _probe_line(probe))
            if probe.endpoint != "validate":
                total += 1
                answered += probe.ok
        for skipped in check.skipped:
            total += 1
            lines.append(f"  {skipped}")
        route = check.route
        lines.append(f"  base URL {route.url} (from {route.source}), {route.proxy}")
    ok = all(p.ok for c in checks for p in c.probes) and not any(c.skipped for c in checks)
    verdict = "OK" if ok else "FAILED"
    lines.append(f"online check {verdict}: {answered} of {total} endpoints answered 200")
    return "\n".join(lines), ok


def _probe_line(probe: Probe) -> str:
    head = f"{probe.endpoint:<{COLUMN}} {probe.status:<14}"
    parts = []
    if probe.query:
        parts.append(f"query {probe.query}")
    if probe.ok and probe.endpoint == "validate":
        parts.append("API key valid")
    if probe.rows is not None:
        parts.append(f"{probe.rows} row{'s' if probe.rows != 1 else ''} returned")
    if probe.na_fields:
        parts.append("group_by fields answered N/A: " + ", ".join(probe.na_fields))
    if probe.limit is not None:
        period = format_duration(probe.period) if probe.period else "?"
        left = "?" if probe.remaining is None else str(probe.remaining)
        parts.append(f"rate limit {probe.limit} per {period}, {left} left")
    elif probe.endpoint != "validate":
        parts.append("no rate-limit headers")
    if probe.detail and not probe.ok:
        parts.append(probe.detail)
    return head + "; ".join(parts)
