"""Wiring: from validated settings to running pieces (client, scheduler, store, web server).

Owns start-up and shutdown order; holds no business logic of its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from .collectors.base import QueryJob
from .collectors.connections import ConnectionsJob
from .credentials import Credentials
from .datadog import DatadogClient
from .logs import Redactor
from .scheduler import Scheduler
from .selfmetrics import SelfMetrics
from .server import ServerContext, create_app
from .settings import Config
from .snapshot import SnapshotStore
from .webconfig import WebSecurity

log = logging.getLogger(__name__)


def build_jobs(config: Config) -> list[QueryJob]:
    """One job per configured query, in configuration order."""
    jobs: list[QueryJob] = [ConnectionsJob(query) for query in config.connections]
    return jobs


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """``:10173`` -> (None = all interfaces, 10173); ``127.0.0.1:80``; ``[::1]:80``."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid listen address {address!r}: expected HOST:PORT or :PORT")
    host = host.strip("[]")
    return (host or None), int(port_text)


@dataclass
class RunOptions:
    listen_address: str
    telemetry_path: str
    web: WebSecurity | None = None  # TLS and basic auth from --web.config.file


class Exporter:
    """The running daemon: one client, one scheduler, one web server."""

    def __init__(
        self,
        config: Config,
        base_url: str,
        credentials: Credentials,
        redactor: Redactor,
        options: RunOptions,
    ):
        self.config = config
        self.options = options
        self.metrics = SelfMetrics()
        self.store = SnapshotStore()
        self.client = DatadogClient(
            base_url,
            credentials=credentials,
            redactor=redactor,
            timeout=config.datadog.timeout,
            max_response_size=config.datadog.max_response_size,
            on_response=self.metrics.count_response,
        )
        self.scheduler = Scheduler(self.client, self.store, self.metrics)
        self.metrics.watch(self.scheduler.query_states, self.scheduler.rate_limit_views)
        self.context = ServerContext(
            store=self.store,
            metrics=self.metrics,
            states=self.scheduler.query_states,
            telemetry_path=options.telemetry_path,
        )
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        host, port = parse_listen_address(self.options.listen_address)
        security = self.options.web or WebSecurity(None, ())
        app = create_app(self.context, security.middlewares)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=security.ssl_context)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        self.scheduler.start(build_jobs(self.config))
        self.context.ready = True
        log.info(
            "listening",
            extra={
                "address": self.options.listen_address,
                "port": self.port,
                "scheme": security.scheme,
                "basic_auth": bool(security.middlewares),
                "queries": len(self.scheduler.jobs),
            },
        )

    async def stop(self) -> None:
        self.context.ready = False
        await self.scheduler.stop()
        await self.client.close()
        if self._runner is not None:
            await self._runner.cleanup()


async def serve_until_signalled(exporter: Exporter) -> None:
    """Run until SIGTERM or SIGINT, then stop polling and close everything."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await exporter.start()
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await exporter.stop()
