"""Wiring: from validated settings to running pieces (client, scheduler, store, web server).

Owns start-up and shutdown order; holds no business logic of its own.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import re
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from .clock import SYSTEM_CLOCK, Clock
from .collectors.protocol import QueryJob
from .collectors.registry import configured_jobs
from .config.accounts import BaseUrl, resolve_accounts
from .config.errors import ConfigError
from .config.schema import Config, costly_interval_warnings
from .config.web import WebSecurity
from .datadog.credentials import Credentials, CredentialsError
from .datadog.pool import Route, build_pool
from .logs import Redactor
from .scheduler import PollPolicy, Scheduler
from .selfmetrics import SelfMetrics
from .server import DOCS_URL, ServerContext, create_app, describe_queries
from .sharding import Shard, ShardKey
from .snapshot import SnapshotStore

log = logging.getLogger(__name__)


def build_jobs(config: Config, shard: Shard | None = None) -> list[QueryJob]:
    """One job per configured query this shard owns (all of them unsharded), in file order."""
    return (shard or Shard()).select(list(configured_jobs(config)), shard_key)


def shard_key(job: QueryJob) -> ShardKey:
    return (job.account, job.collector, job.name)


# A host name or IPv4 address: dot-separated labels of letters, digits, '-' and '_'.
_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
DEFAULT_MAX_REQUESTS = 40


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """``:10173`` -> (None = all interfaces, 10173); ``127.0.0.1:80``; ``[::1]:80``; ``host:80``.

    Raises ValueError saying what is wrong; the rules are Go's ``net.SplitHostPort`` (an IPv6
    address needs brackets), so the flag reads as it does for every other exporter.
    """
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError("missing ']' after the IPv6 address")
        host, rest = address[1:end], address[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError("missing :PORT after the IPv6 address")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep:
            raise ValueError("missing :PORT (expected HOST:PORT or :PORT)")
        if "[" in host or "]" in host:
            raise ValueError("unexpected bracket (write an IPv6 address as [::1]:PORT)")
        if ":" in host:
            raise ValueError("too many colons (write an IPv6 address as [::1]:PORT)")
        if host and not _HOST_NAME.fullmatch(host):
            raise ValueError(f"{host!r} is not a host name or IP address")
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise ValueError(f"port {port_text!r} is not a number from 0 to 65535")
    return (host or None), int(port_text)


class ListenError(Exception):
    """A listen address that parses but cannot be served: it does not resolve, or binding
    fails. The message names the address and the cause, in the words of the system call."""


# What to do about the common bind failures, after the system's own words.
_BIND_HINTS = {
    errno.EADDRINUSE: "another process listens there; stop it or choose another port",
    errno.EACCES: "a port below 1024 needs root or CAP_NET_BIND_SERVICE",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's",
}


def describe_listen_failure(address: str, host: str | None, port: int, exc: OSError) -> str:
    """One line: the flag, the address, and why it cannot be served (with a hint if known)."""
    if isinstance(exc, socket.gaierror):
        reason = exc.strerror or str(exc)
        return f"--web.listen-address {address}: cannot resolve {host}: {reason}"
    if exc.errno is None:
        return f"--web.listen-address {address}: cannot listen: {exc}"
    hint = _BIND_HINTS.get(exc.errno)
    if exc.errno == errno.EACCES and port >= 1024:
        hint = None  # not the privileged-port rule: a security module, say
    reason = os.strerror(exc.errno) + (f" ({hint})" if hint else "")
    return f"--web.listen-address {address}: cannot listen: {reason}"


# Re-reads the configuration for a reload: the new Config and the base URL it implies.
ConfigSource = Callable[[], tuple[Config, str | BaseUrl]]


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


class Exporter:
    """The running daemon: one client per account, one scheduler, one web server."""

    def __init__(
        self,
        config: Config,
        base_url: str | BaseUrl,
        credentials: Credentials,
        redactor: Redactor,
        options: RunOptions,
        *,
        config_source: ConfigSource | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        poll_policy: PollPolicy | None = None,
    ):
        """``base_url`` and ``credentials`` are the default account's (the datadog: block and
        DD_* variables); accounts from an ``accounts:`` list read their own keys from
        ``environ`` (default: the process environment) or files. Raises CredentialsError
        when an account's keys are missing. ``clock`` and ``poll_policy`` go to the clients
        and the scheduler (defaults: the system clock, the shipped policy)."""
        self.config = config
        self.options = options
        self.config_source = config_source
        self.clock = clock
        self.metrics = SelfMetrics()
        self.store = SnapshotStore()
        self.pool = build_pool(
            config,
            base_url,
            credentials,
            redactor,
            self.metrics.count_response,
            environ=environ,
            clock=clock,
        )
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
        self.metrics.watch(self.scheduler.query_states, self.pool.rate_limit_views)
        self.context = ServerContext(
            store=self.store,
            metrics=self.metrics,
            states=self.scheduler.query_states,
            telemetry_path=options.telemetry_path,
            reload=self.reload if config_source is not None else None,
            shard=options.shard,
            max_requests=options.max_requests,
            clock=clock,
            routes=self.routes,
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
        app = create_app(self.context, security.basic_auth_users)
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
        await self.scheduler.start(self._owned_jobs(self.config))
        self.metrics.config_loaded(True, self.clock.wall())
        self.metrics.watch_loop(asyncio.get_running_loop())
        self.context.ready = True
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
                    "configured_queries": self.context.configured_queries,
                    "shard": f"{shard.index}/{shard.count}",
                },
            )

    async def reload(self) -> tuple[bool, str]:
        """Re-read the configuration and apply it; on any error keep the running one."""
        if self.config_source is None:
            return False, "reload is not available: no configuration file"
        async with self._reload_lock:
            try:
                config, url = await asyncio.to_thread(self.config_source)
                accounts = resolve_accounts(config, url)
                credentials = self.pool.credentials(accounts)
            except (ConfigError, CredentialsError) as exc:
                self.metrics.config_loaded(False, self.clock.wall())
                log.error(
                    "reload failed; the running configuration stays in effect",
                    extra={"error": str(exc)},
                )
                return False, f"reload failed, the running configuration stays in effect: {exc}"
            removed = self.pool.apply(accounts, credentials)
            routes = self.pool.routes(accounts)
            if routes != self.routes:
                self.routes = self.context.routes = routes
                self._log_routes()
            self.scheduler.set_max_attempts(config.datadog.max_attempts)
            changes = await self.scheduler.apply(self._owned_jobs(config))
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
        """The jobs of this replica's shard; keeps the shard self-metrics and page current."""
        jobs = build_jobs(config, self.options.shard)
        configured = len(config.all_queries())
        shard = self.options.shard
        self.metrics.set_shard(shard.index, shard.count, len(jobs), configured)
        self.context.configured_queries = configured
        self.context.details = describe_queries(config)
        return jobs

    def reload_soon(self) -> None:
        """Start a reload from a signal handler; the task is kept until it finishes."""
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._signalled_reloads.add(task)
        task.add_done_callback(self._signalled_reloads.discard)

    async def stop(self) -> None:
        self.context.ready = False
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
