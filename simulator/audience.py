"""The fixed RUM Audience Management data-source connections per entity (pure data)."""

from __future__ import annotations

from typing import Any

_USER_FIELDS = [
    {
        "id": "plan",
        "source_name": "subscription_plan",
        "type": "string",
        "display_name": "Plan",
        "description": "Billing plan of the user",
        "groups": ["billing"],
    },
    {"id": "ltv", "source_name": "lifetime_value", "type": "number"},
]

CONNECTIONS: dict[str, list[dict[str, Any]]] = {
    "users": [
        {
            "id": "3a8f6a2e-users-crm",
            "type": "ref_table",
            "join": {"attribute": "usr.email", "type": "email"},
            "fields": _USER_FIELDS,
            "metadata": {"table": "crm_users", "owner": "growth"},
            "created_at": "2024-03-01T09:30:00Z",
            "updated_at": "2025-01-15T17:45:12.123456Z",
            "created_by": "alice@example.com",
            "updated_by": "bob@example.com",
        },
        {
            "id": "77c1d0b4-users-legacy",
            "type": "ref_table",
            "join": {"attribute": "usr.id", "type": "user_id"},
            "fields": [{"id": "segment", "source_name": "segment", "type": "string"}],
            "metadata": {"table": 'legacy "users"', "région": "zürich-ß"},
            "created_at": "0001-01-01T00:00:00Z",
            "updated_at": "0001-01-01T00:00:00Z",
        },
        {
            "id": "c2b9e1f0-users-new",
            "type": "ref_table",
            "join": {"attribute": "usr.id", "type": "user_id"},
            "fields": [],
            "created_at": "2025-06-30T23:59:59+02:00",
            "created_by": "chloé@example.com",
        },
    ],
    "accounts": [
        {
            "id": "5e0c9b7d-accounts-sfdc",
            "type": "ref_table",
            "join": {"attribute": "account.id", "type": "account_id"},
            "fields": [
                {"id": "tier", "source_name": "tier", "type": "string", "groups": ["sales"]},
                {"id": "arr", "source_name": "annual_revenue", "type": "number"},
            ],
            "metadata": {"table": "salesforce_accounts"},
            "created_at": "2024-11-05T08:00:00Z",
            "updated_at": "2025-02-01T12:00:00Z",
            "created_by": "bob@example.com",
            "updated_by": "bob@example.com",
        },
        {
            "id": "9d4a1c33-accounts-東京",
            "type": "ref_table",
            "join": {"attribute": "account.name", "type": "string"},
            "fields": [{"id": "region", "source_name": "region", "type": "string"}],
            "metadata": {},
            "created_at": "2025-03-03T03:03:03Z",
        },
    ],
}


def list_connections(entity: str) -> dict[str, Any] | None:
    """The answer for `entity`, or None when the entity is unknown."""
    connections = CONNECTIONS.get(entity)
    if connections is None:
        return None
    return {
        "data": {
            "id": entity,
            "type": "list_connections_response",
            "attributes": {"connections": connections},
        }
    }
