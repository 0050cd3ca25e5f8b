"""What to check when Datadog rejects a request's keys (HTTP 401 or 403), as one line.

A bare ``HTTP 403: Forbidden`` says nothing about which key, which organisation or which
permission; :func:`rejection_hint` says all three as far as the answer and the registry
know: the key header the error body names (when it names one), the base URL and site the
request went to, and the permission the endpoint needs (from the registry entry, marked when
inferred). The poll's failure line and the online configuration check both use it. Pure.
"""

from __future__ import annotations

from yarl import URL

from ..collectors.registry import BY_ENDPOINT
from ..config.schema import SITES

API_KEY = "API key (DD-API-KEY)"
APP_KEY = "application key (DD-APPLICATION-KEY)"


def rejected_key(error_text: str) -> str | None:
    """The key an error body says was rejected (``API key required``, ``Invalid application
    key``...), or None when it names none (``Forbidden``)."""
    text = error_text.lower().replace("_", " ").replace("-", " ")
    if "application key" in text or "app key" in text:
        return APP_KEY
    if "api key" in text:
        return API_KEY
    return None


def says_permission(error_text: str) -> bool:
    """True when the body blames a permission (``Failed permission authorization checks``):
    the keys were accepted, the application key's role lacks what the endpoint needs."""
    return "permission" in error_text.lower()


def where(base_url: str) -> str:
    """``https://api.datadoghq.eu (site datadoghq.eu)``: the base URL without any login, and
    the site it belongs to, or that it is none of Datadog's sites."""
    url = URL(base_url)
    shown = str(url.with_user(None).with_password(None)).rstrip("/")
    host = url.host or ""
    site = host.removeprefix("api.") if host.startswith("api.") else None
    if site in SITES:
        return f"{shown} (site {site})"
    return f"{shown} (not a Datadog site: a custom datadog.api_url or DD_API_URL)"


def permission_hint(endpoint: str) -> str:
    """``the application key's user or service account needs cases_read (documented: ...)``;
    empty for an endpoint the registry does not know."""
    entry = BY_ENDPOINT.get(endpoint)
    if entry is None:
        return ""
    permission = entry.permission
    return (
        f"the application key's user or service account needs the {permission.name} "
        f"permission ({permission.source})"
    )


def rejection_hint(
    status: int, endpoint: str, error_text: str, base_url: str, source: str | None = None
) -> str:
    """What to check after a 401 or 403 from ``endpoint``: the key the body names (or both),
    where the request went (keys work only for their own site's organisation; ``source``,
    when known, is the setting that chose the URL) and, for a 403, the permission the
    endpoint needs. ``endpoint`` ``validate`` (``GET /api/v1/validate``) checks the API key
    only. The poll's failure line and the online check both say this."""
    key = API_KEY if endpoint == "validate" else rejected_key(error_text)
    if key is not None:
        which = f"Datadog rejected the {key}"
    elif status == 403 and says_permission(error_text):
        which = f"Datadog accepted the keys but refused the {APP_KEY} a permission"
    else:
        which = f"Datadog did not say which key it rejected: check the {API_KEY} and the {APP_KEY}"
    place = where(base_url) + (f", set by {source}" if source else "")
    parts = [which, f"both must belong to the organisation at {place}"]
    if status == 403:
        permission = permission_hint(endpoint)
        if permission:
            parts.append(permission)
    return "; ".join(parts)
