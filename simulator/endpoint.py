"""What an endpoint is: the types the list of endpoints, the faults and the state share.

A leaf below `endpoints` (the one list of them), `faults` (which damage their answers) and
`state` (which their answers are computed from): it imports none of the three, so each can
import it. Before it, `endpoints` and `faults` imported each other's types and `endpoints`
the state's (issue 21); the simulator's layers contract keeps that cycle from coming back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from simulator.cases import Case
from simulator.data import NetworkData
from simulator.options import Scenario, SimulatorOptions

JSON_API = "application/vnd.api+json"  # the content type of Datadog's answers


class AnswerInputs(Protocol):
    """What an endpoint reads to compute an answer (the simulator's state is one): its
    options, clock, data and scenarios, and the cache of answers already built."""

    @property
    def options(self) -> SimulatorOptions: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def network(self) -> NetworkData: ...

    @property
    def cases(self) -> list[Case]: ...

    @property
    def scenarios(self) -> Sequence[Scenario]: ...

    def cached_answer(self, key: tuple[Any, ...], build: Callable[[], bytes]) -> bytes: ...


# Computes the answer of a request that passed auth, budget and fault checks; raises ErrorAnswer
# for an answer Datadog gives on bad input (400, 404).
Compute = Callable[[web.Request, AnswerInputs, Any], web.Response]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    method: str
    path: str
    rate_limit_name: str  # the X-RateLimit-Name header Datadog sends for its budget
    compute: Compute
    # A huge answer is ``prefix + item,item,... + suffix``: valid JSON of any size.
    huge_parts: tuple[bytes, bytes, bytes]
    wrong_shape: object  # valid JSON of the wrong shape, the default of a wrong_shape fault
    # Cloud Network Monitoring: answers a bare 400 when the organisation has no CNM.
    cnm: bool = False
