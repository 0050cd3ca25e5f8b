"""Constants and helpers shared by the simulator tests."""

from __future__ import annotations

AUTH = {"DD-API-KEY": "sim-api-key", "DD-APPLICATION-KEY": "sim-app-key"}
CONNECTIONS = "/api/v2/network/connections/aggregate"
DNS = "/api/v2/network/dns/aggregate"
CASES = "/api/v2/cases/aggregate"
AUDIENCE = "/api/v2/product-analytics/{entity}/mapping/connections"


def cases_body(groups: list[str], limit: int = 100, query_filter: str = "") -> dict[str, object]:
    return {
        "data": {
            "type": "aggregate",
            "attributes": {
                "query_filter": query_filter,
                "group_by": {"groups": groups, "limit": limit},
            },
        }
    }
