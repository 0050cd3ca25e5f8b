"""The mutable state of one simulator: armed faults, scenarios, budgets, request log."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from simulator.cases import Case, build_cases
from simulator.data import NetworkData
from simulator.endpoints import ENDPOINTS, FAULT_TARGETS
from simulator.faults import FaultBook
from simulator.options import OptionError, Scenario, SimulatorOptions
from simulator.ratelimit import RateLimiter

ANSWER_CACHE_SIZE = 128


@dataclass(slots=True)
class RequestRecord:
    """One request to a simulated Datadog endpoint, as the tests count them.

    `status` is None while no status has been decided (e.g. a hanging request).
    `time` is `time.monotonic()` when the request arrived; `at` the simulator's own clock.
    """

    endpoint: str
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int | None
    time: float = field(default_factory=time.monotonic)
    at: float = 0.0  # the simulator's clock (Unix time) on arrival: which rate-limit period

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SimulatorState:
    def __init__(self, options: SimulatorOptions, clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self.clock = clock
        known = [endpoint.name for endpoint in ENDPOINTS]
        for name in options.denied_endpoints:
            if name not in known:
                raise OptionError(f"denied endpoint {name!r}: must be one of {', '.join(known)}")
        self.limiter = RateLimiter(
            options.rate_limit,
            options.rate_limit_period,
            clock,
            {endpoint.name: endpoint.rate_limit_name for endpoint in ENDPOINTS},
        )
        self.faults = FaultBook(FAULT_TARGETS)
        self.scenarios: list[Scenario] = []
        self.request_log: list[RequestRecord] = []
        self.network = NetworkData(
            options.seed, options.connections_universe, weekly_swing=options.weekly_swing
        )
        self._cases: list[Case] | None = None
        self.answers: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self.closing = asyncio.Event()

    @property
    def cases(self) -> list[Case]:
        if self._cases is None:
            self._cases = build_cases(self.options.seed, self.options.cases_universe)
        return self._cases

    def clear_faults(self) -> None:
        """Disarm every fault and end any 429 period a rate_limit fault started."""
        self.faults.clear()
        self.limiter.unblock()

    def set_scenario(self, scenario: Scenario) -> None:
        """Add a scenario (replacing one of the same kind, match and time bounds)."""
        self.scenarios = [
            s
            for s in self.scenarios
            if (s.kind, s.match, s.start, s.end)
            != (scenario.kind, scenario.match, scenario.start, scenario.end)
        ]
        self.scenarios.append(scenario)
        self.answers.clear()

    def clear_scenarios(self) -> None:
        self.scenarios = []
        self.answers.clear()

    def cached_answer(self, key: tuple[Any, ...], build: Callable[[], bytes]) -> bytes:
        answer = self.answers.get(key)
        if answer is None:
            answer = build()
            self.answers[key] = answer
            if len(self.answers) > ANSWER_CACHE_SIZE:
                self.answers.popitem(last=False)
        else:
            self.answers.move_to_end(key)
        return answer
