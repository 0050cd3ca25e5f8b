"""Wiring: from validated settings to running pieces (client, scheduler, store, web server).

Owns start-up and shutdown order; holds no business logic of its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from aiohttp import web

from .clock import SYSTEM_CLOCK, Clock
from .collectors.protocol import QueryJob
from .collectors.registry import configured_jobs
from .config.accounts import BaseUrl
from .config.errors import ConfigError
from .config.schema import Config, costly_interval_warnings
from .config.web import WebSecurity
from .datadog.credentials import Credentials, CredentialsError
from .datadog.pool import ClientPool, Clients, PoolBuilder, Route
from .listen import ListenError, describe_listen_failure, parse_listen_address
from .logs import Redactor
from .scheduler import PollPolicy, Scheduler
from .selfmetrics import SelfMetrics
from .server import DOCS_URL, Catalog, ServerParts, create_app, describe_queries
from .sharding import Shard, ShardKey
from .snapshot import SnapshotStore

log = logging.getLogger(__name__)


def build_jobs(config: Config, shard: Shard | None = None) -> list[QueryJob]:
    """One job per configured query this shard owns (all of them unsharded), in file order."""
    return (shard or Shard()).select(list(configured_jobs(config)), shard_key)


def shard_key(job: QueryJob) -> ShardKey:
    return (job.account, job.collector, job.name)


DEFAULT_MAX_REQUESTS = 40


# Re-reads the configuration for a reload: the new Config and the base URL it implies.
ConfigSource = Callable[[], tuple[Config, str | BaseUrl]]
# The same, with the clients' accounts and keys read through the start-up's PoolBuilder.
ReloadSource = Callable[[], tuple[Config, Clients]]


@dataclass
class RunOptions:
    # One address or several (--web.listen-address may be repeated); each gets the same
    # routes, TLS and basic auth.
    listen_address: str | Sequence[str]
    telemetry_path: str
    web: WebSecurity | None = None  # TLS and basic auth from --web.config.file
    shard: Shard = field(default_factory=Shard)
    # Concurrent /metrics requests served at once (--web.max-requests); 0: no limit.
    max_requests: int = DEFAULT_MAX_REQUESTS
    demo: bool = False  # --demo: the landing page says the data is the simulator's
    docs_url: str = DOCS_URL  # where the landing page's documentation link points

    @property
    def listen_addresses(self) -> tuple[str, ...]:
        if isinstance(self.listen_address, str):
            return (self.listen_address,)
        return tuple(self.listen_address)


def build_exporter(
    config: Config,
    base_url: str | BaseUrl,
    credentials: Credentials,
    redactor: Redactor,
    options: RunOptions,
    *,
    environ: Mapping[str, str],
    config_source: ConfigSource | None = None,
    clock: Clock = SYSTEM_CLOCK,
    poll_policy: PollPolicy | None = None,
) -> Exporter:
    """The exporter with its clients, the I/O done here: one :class:`PoolBuilder` reads the
    proxy variables, ``datadog.ca_file`` and every account's keys now, and again for each
    reload of ``config_source``.

    ``base_url`` and ``credentials`` are the default account's (the datadog: block and DD_*
    variables); accounts from an ``accounts:`` list read their own keys from ``environ`` (the
    command line's snapshot) or files. Raises ConfigError (a proxy variable, datadog.ca_file)
    or CredentialsError (an account's keys). ``clock`` and ``poll_policy`` go to the clients
    and the scheduler (defaults: the system clock, the shipped policy)."""
    builder = PoolBuilder(redactor, credentials, environ)
    metrics = SelfMetrics()
    pool = builder.pool(config, base_url, metrics.count_response, clock=clock)
    reload_source: ReloadSource | None = None
    if config_source is not None:
        read = config_source

        def reload_source() -> tuple[Config, Clients]:
            new, url = read()
            return new, builder.clients(new, url)

    return Exporter(
        config,
        pool,
        metrics,
        redactor,
        options,
        config_source=reload_source,
        clock=clock,
        poll_policy=poll_policy,
    )


class Exporter:
    """The running daemon: one client per account, one scheduler, one web server.

    Built from values (:func:`build_exporter` reads the files and the environment): the
    constructor reads no file and no variable."""

    def __init__(
        self,
        config: Config,
        pool: ClientPool,
        metrics: SelfMetrics,
        redactor: Redactor,
        options: RunOptions,
        *,
        config_source: ReloadSource | None = None,
        clock: Clock = SYSTEM_CLOCK,
        poll_policy: PollPolicy | None = None,
    ):
        """``pool`` holds the clients of ``config``'s accounts, counting their answers in
        ``metrics``; ``config_source`` (None: no reloads) gives a reload its configuration
        and clients. ``clock`` and ``poll_policy`` go to the scheduler (defaults: the system
        clock, the shipped policy)."""
        self.config = config
        self.options = options
        self.config_source = config_source
        self.clock = clock
        self.metrics = metrics
        self.store = SnapshotStore()
        self.pool = pool
        self.routes: list[Route] = self.pool.routes(self.pool.accounts)
        self.scheduler = Scheduler(
            self.pool.client,
            redactor,
            self.store,
            self.metrics,
            clock=clock,
            policy=poll_policy,
            max_attempts=config.datadog.max_attempts,
        )
        self.metrics.watch(self.pool.rate_limit_views)
        # Set once the polls are started, cleared at stop: what /-/ready answers.
        self.ready = asyncio.Event()
        self.catalog = Catalog(routes=tuple(self.routes))
        self.server = ServerParts(
            store=self.store,
            metrics=self.metrics,
            states=self.scheduler.query_states,
            telemetry_path=options.telemetry_path,
            ready=self.ready,
            reload=self.reload if config_source is not None else None,
            shard=options.shard,
            max_requests=options.max_requests,
            clock=clock,
            catalog=lambda: self.catalog,
            demo=options.demo,
            docs_url=options.docs_url,
        )
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the first address's (the bound one when given as 0)
        self.ports: list[int] = []
        self._reload_lock = asyncio.Lock()
        self._signalled_reloads: set[asyncio.Task[tuple[bool, str]]] = set()

    async def start(self) -> None:
        """Listen on every address, then start polling. Raises ListenError (nothing polled)
        when an address does not resolve or cannot be bound; stop() closes what was opened."""
        addresses = [(a, *parse_listen_address(a)) for a in self.options.listen_addresses]
        security = self.options.web or WebSecurity(None)
        app = create_app(self.server, security.basic_auth_users)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        for address, host, port in addresses:
            site = web.TCPSite(self._runner, host, port, ssl_context=security.ssl_context)
            bound_before = len(self._runner.addresses)
            try:
                await site.start()
            except OSError as exc:
                raise ListenError(describe_listen_failure(address, host, port, exc)) from None
            # The runner lists every site's sockets in order; this site's come last (several
            # for all interfaces, IPv4 and IPv6, all on the one port).
            bound = self._runner.addresses[bound_before:]
            self.ports.append(bound[0][1] if bound else port)
        self.port = self.ports[0]
        self._log_routes()
        jobs = self._owned_jobs(self.config)
        self._show_configuration(self.config, jobs)
        await self.scheduler.start(jobs)
        self.metrics.config_loaded(True, self.clock.wall())
        self.metrics.watch_loop(asyncio.get_running_loop())
        self.ready.set()
        shard = self.options.shard
        for (address, _, _), port in zip(addresses, self.ports, strict=True):
            log.info(
                "listening",
                extra={
                    "address": address,
                    "port": port,
                    "scheme": security.scheme,
                    "basic_auth": bool(security.basic_auth_users),
                    "max_requests": self.options.max_requests,
                    "queries": len(self.scheduler.query_states()),
                    "configured_queries": self.catalog.configured_queries,
                    "shard": f"{shard.index}/{shard.count}",
                },
            )

    async def reload(self) -> tuple[bool, str]:
        """Re-read the configuration and apply it; on any error keep the running one."""
        if self.config_source is None:
            return False, "reload is not available: no configuration file"
        async with self._reload_lock:
            try:
                # Off the loop: the file, datadog.ca_file and key files are read here.
                config, clients = await asyncio.to_thread(self.config_source)
            except (ConfigError, CredentialsError) as exc:
                self.metrics.config_loaded(False, self.clock.wall())
                log.error(
                    "reload failed; the running configuration stays in effect",
                    extra={"error": str(exc)},
                )
                return False, f"reload failed, the running configuration stays in effect: {exc}"
            removed = self.pool.apply(clients.accounts, clients.credentials)
            routes = self.pool.routes(clients.accounts)
            if routes != self.routes:
                self.routes = routes
                self.catalog = replace(self.catalog, routes=tuple(routes))
                self._log_routes()
            self.scheduler.set_max_attempts(config.datadog.max_attempts)
            jobs = self._owned_jobs(config)
            self._show_configuration(config, jobs)
            changes = await self.scheduler.apply(jobs)
            for client in removed:
                await client.close()
            self.config = config
            self.metrics.config_loaded(True, self.clock.wall())
            for warning in costly_interval_warnings(config):
                log.warning(warning)
            counts = {
                "added": len(changes.added),
                "changed": len(changes.changed),
                "removed": len(changes.removed),
                "unchanged": len(changes.unchanged),
            }
            log.info("configuration reloaded", extra=counts)
            return True, "configuration reloaded: " + ", ".join(
                f"{count} {what}" for what, count in counts.items()
            )

    def _log_routes(self) -> None:
        """Where requests go, one line per account (the proxy without its login)."""
        for route in self.routes:
            log.info(
                "Datadog API",
                extra={
                    "account": route.account,
                    "base_url": route.url,
                    "base_url_from": route.source,
                    "proxy": route.proxy,
                },
            )

    def _owned_jobs(self, config: Config) -> list[QueryJob]:
        """The jobs of this replica's shard."""
        return build_jobs(config, self.options.shard)

    def _show_configuration(self, config: Config, owned: Sequence[QueryJob]) -> None:
        """The shard self-metrics and the landing page's view of ``config``, whose ``owned``
        jobs this replica polls."""
        configured = len(config.all_queries())
        shard = self.options.shard
        self.metrics.set_shard(shard.index, shard.count, len(owned), configured)
        self.catalog = replace(
            self.catalog, configured_queries=configured, details=describe_queries(config)
        )

    def reload_soon(self) -> None:
        """Start a reload from a signal handler; the task is kept until it finishes."""
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._signalled_reloads.add(task)
        task.add_done_callback(self._signalled_reloads.discard)

    async def stop(self) -> None:
        self.ready.clear()
        for task in list(self._signalled_reloads):
            task.cancel()
        await asyncio.gather(*self._signalled_reloads, return_exceptions=True)
        await self.scheduler.stop()
        await self.pool.close()
        if self._runner is not None:
            await self._runner.cleanup()


async def serve_until_signalled(exporter: Exporter) -> None:
    """Run until SIGTERM or SIGINT, then stop polling and close everything; SIGHUP reloads."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if exporter.config_source is not None:
        loop.add_signal_handler(signal.SIGHUP, exporter.reload_soon)
    try:
        # Inside the try: when the second of two addresses fails, the first is closed too.
        await exporter.start()
        await stop.wait()
        log.info("shutting down")
    finally:
        await exporter.stop()
