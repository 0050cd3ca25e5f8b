"""What the two CNM aggregate endpoints answer for a request, as bytes (pure, no I/O).

The HTTP routes serve exactly these bytes, so a test can compute what the simulator
answers for any window ``[from, to]`` without a server: the same seed, universe, scenarios
and parameters give the same body. Answers vary with ``to`` (a five-minute pattern per
group, a daily rhythm, scenarios bounded in time), never with the moment of asking, except
that a request without ``to`` means "now".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec

from simulator.data import NetworkData
from simulator.options import Scenario
from simulator.params import NetworkQuery, parse_network_params

NetworkEndpoint = Literal["connections", "dns"]


def network_query(endpoint: NetworkEndpoint, params: Mapping[str, str], now: int) -> NetworkQuery:
    """Validate ``params`` as the endpoint does (raises the simulator's 400 ErrorAnswer)."""
    return parse_network_params(params, now=now, dns=endpoint == "dns")


def network_answer(
    network: NetworkData,
    endpoint: NetworkEndpoint,
    query: NetworkQuery,
    scenarios: Sequence[Scenario] = (),
) -> bytes:
    """The JSON body either endpoint answers ``query`` with."""
    rows = network.rows(
        endpoint,
        keys=query.keys,
        filter_key=query.filter_key,
        predicate=query.predicate,
        start=query.start,
        end=query.end,
        limit=query.limit,
        scenarios=tuple(scenarios),
    )
    return msgspec.json.encode({"data": rows})
