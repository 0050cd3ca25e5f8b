"""A rejected key names what to check: which key the body names, where the request went, and
the permission the endpoint needs (marked when inferred), from the registry's data."""

from __future__ import annotations

import pytest

from exporter.collectors.registry import REGISTRY
from exporter.datadog.rejections import permission_hint, rejected_key, rejection_hint


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("API key required", "API key (DD-API-KEY)"),
        ("Invalid API_KEY", "API key (DD-API-KEY)"),
        ("Forbidden: invalid application key", "application key (DD-APPLICATION-KEY)"),
        ("app key is not valid", "application key (DD-APPLICATION-KEY)"),
        ("Forbidden", None),
        ("HTML error page (403 Forbidden)", None),
    ],
)
def test_the_key_the_body_names_is_recognised(body: str, key: str | None) -> None:
    assert rejected_key(body) == key


def test_a_403_names_both_keys_the_site_and_the_permission() -> None:
    hint = rejection_hint(403, "connections", "Forbidden", "https://api.datadoghq.eu")
    assert "did not say which key" in hint
    assert "DD-API-KEY" in hint and "DD-APPLICATION-KEY" in hint
    assert "https://api.datadoghq.eu (site datadoghq.eu)" in hint
    assert "network_connections_read permission (inferred" in hint


def test_a_401_names_the_key_and_leaves_permissions_out() -> None:
    hint = rejection_hint(401, "cases", "API key required", "https://api.datadoghq.com")
    assert hint.startswith("Datadog rejected the API key (DD-API-KEY)")
    assert "cases_read" not in hint


def test_a_custom_base_url_is_shown_without_its_login() -> None:
    hint = rejection_hint(403, "cases", "Forbidden", "http://alice:s3cr3t@127.0.0.1:8080")
    assert "s3cr3t" not in hint and "alice" not in hint
    assert "http://127.0.0.1:8080 (not a Datadog site" in hint
    assert "cases_read permission (documented" in hint


def test_every_endpoint_has_its_permission_and_says_how_sure_that_is() -> None:
    expected = {
        "connections": ("network_connections_read", True),
        "dns": ("network_connections_read", True),
        "cases": ("cases_read", False),
        "audience": ("audience_management_read", True),
        "network_health": ("network_health_insights_read", False),
    }
    got = {e.endpoint: (e.permission.name, e.permission.inferred) for e in REGISTRY}
    assert got == expected
    for entry in REGISTRY:
        said = "(inferred" if entry.permission.inferred else "(documented"
        assert said in permission_hint(entry.endpoint)


def test_a_permission_refusal_says_the_keys_were_accepted_and_names_the_permission() -> None:
    said = "Forbidden: Failed permission authorization checks"
    hint = rejection_hint(403, "dns", said, "https://api.datadoghq.com")
    assert hint.startswith("Datadog accepted the keys but refused the application key")
    assert "network_connections_read" in hint


def test_the_online_check_can_name_the_setting_that_chose_the_url() -> None:
    hint = rejection_hint(403, "validate", "Forbidden", "https://api.datadoghq.eu", "DD_SITE")
    assert hint.startswith("Datadog rejected the API key (DD-API-KEY)")
    assert "https://api.datadoghq.eu (site datadoghq.eu), set by DD_SITE" in hint
