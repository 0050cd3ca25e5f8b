"""What to check when Datadog refuses a key: one hint for a 401 or 403, shared by the online
configuration check (and meant for the live poll's failure line too).

Pure: the endpoint, the status, what the error body said and where the request went in; a
sentence out. It never holds a key: it names the header and the setting to look at.

Permissions per endpoint (docs/operations.md lists them with how sure each one is):
``network_connections_read`` for CNM connections and DNS (Datadog's RBAC permission "Read
Cloud Network Connections"; the exact one the API checks is not stated), ``cases_read`` for
Case Management (documented as the OAuth scope), ``audience_management_read`` for RUM
Audience Management (inferred from the permissions page).
"""

from __future__ import annotations

# The reasons a refused key gets (poll_errors_total's reason label, the online check).
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"

# endpoint -> the permission its application key needs.
PERMISSIONS: dict[str, str] = {
    "connections": "network_connections_read",
    "dns": "network_connections_read",
    "cases": "cases_read",
    "audience": "audience_management_read",
}


def auth_reason(status: int) -> str | None:
    """``unauthorized`` for 401, ``forbidden`` for 403, None for any other status."""
    return {401: UNAUTHORIZED, 403: FORBIDDEN}.get(status)


def auth_hint(endpoint: str, status: int, said: str, base_url: str, source: str) -> str:
    """What to check after ``status`` (401 or 403) from ``endpoint``; ``said`` is the error
    body's one-line description, ``base_url`` and ``source`` where the request went and which
    setting chose it."""
    where = f"at {base_url} (set by {source})"
    lowered = said.lower()
    if "api key" in lowered or endpoint == "validate" or status == 401:
        # Datadog names the API key when that one is wrong or missing; /validate checks only it.
        return (
            f"Datadog refused the API key (DD-API-KEY header): check DD_API_KEY or the "
            f"account's api_key_* setting holds an API key of the organisation {where}; a key "
            "of another site's organisation is refused too"
        )
    if "application key" in lowered or "app key" in lowered:
        return (
            f"Datadog refused the application key (DD-APPLICATION-KEY header): check DD_APP_KEY "
            f"or the account's app_key_* setting {where}"
        )
    permission = PERMISSIONS.get(endpoint)
    needs = f" and that its role grants {permission}" if permission else ""
    return (
        f"check the application key (DD-APPLICATION-KEY header) belongs to the organisation "
        f"{where}{needs}; a scoped application key needs that scope"
    )
