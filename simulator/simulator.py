"""`Simulator`: a running stand-in for the Datadog API, owned by one event loop."""

from __future__ import annotations

import dataclasses
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Literal

from aiohttp import web

from simulator import network_health
from simulator.app import build_app
from simulator.history import NetworkEndpoint, network_answer, network_query
from simulator.options import Fault, Scenario, SimulatorOptions
from simulator.state import RequestRecord, SimulatorState

SHUTDOWN_TIMEOUT = 2.0


class Simulator:
    """The Datadog API simulator.

    Use `app` with an external runner (e.g. pytest-aiohttp's `aiohttp_server`),
    or `start()`/`stop()` to let the simulator run its own server.
    """

    def __init__(
        self,
        options: SimulatorOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options or SimulatorOptions()
        self._state = SimulatorState(self.options, clock)
        self.app: web.Application = build_app(self._state)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """Serve on host:port (0 picks a free port), over TLS with `ssl_context`; `url` tells
        where (https:// with TLS)."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        self._state.network.warm()  # build the universe now, not on the first poll
        runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT, handle_signals=False
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        self._runner = runner
        sockets = runner.addresses
        bound_host, bound_port = sockets[0][0], sockets[0][1]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        scheme = "https" if ssl_context is not None else "http"
        self._url = f"{scheme}://{shown}:{bound_port}"

    async def stop(self) -> None:
        """Stop serving; hanging and dripping answers are released first."""
        if self._runner is None:
            return
        self._state.closing.set()
        await self._runner.cleanup()
        self._runner = None
        self._url = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("simulator not started; call await sim.start()")
        return self._url

    def set_fault(self, endpoint: str, fault: Fault) -> None:
        """Arm `fault` for `endpoint` (a name from `endpoints.ENDPOINTS`, or "*" for all);
        OptionError for any other name."""
        self._state.faults.set(endpoint, fault)

    def set_keys(self, api_key: str, app_key: str) -> None:
        """Accept only this key pair from now on (a rotated Datadog key)."""
        self.options = dataclasses.replace(self.options, api_key=api_key, app_key=app_key)
        self._state.options = self.options

    def clear_faults(self) -> None:
        self._state.clear_faults()

    def active_faults(self) -> dict[str, Fault]:
        """The faults still armed, by target (one with a count goes once it is used up)."""
        return self._state.faults.active()

    def set_scenario(self, scenario: Scenario) -> None:
        self._state.set_scenario(scenario)

    def clear_scenarios(self) -> None:
        self._state.clear_scenarios()

    def answer(
        self, endpoint: NetworkEndpoint | Literal["network_health"], params: Mapping[str, str]
    ) -> bytes:
        """What the connections, DNS or network health endpoint answers to ``params`` now (no
        server needed; with ``from``/``to`` given, the answer for that window whenever it is
        asked)."""
        if endpoint == "network_health":
            start, end = network_health.parse_window(params, int(self._state.clock()))
            return network_health.answer(start, end, self._state.scenarios)
        query = network_query(endpoint, params, int(self._state.clock()))
        return network_answer(self._state.network, endpoint, query, self._state.scenarios)

    @property
    def request_log(self) -> list[RequestRecord]:
        return self._state.request_log

    def requests_to(self, endpoint: str) -> list[RequestRecord]:
        """The logged requests to one endpoint."""
        return [r for r in self._state.request_log if r.endpoint == endpoint]
