"""--web.listen-address parsing: Go's HOST:PORT rules, and a reason for every refusal."""

from __future__ import annotations

import pytest

from exporter.app import parse_listen_address


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        (":10173", (None, 10173)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
        ("localhost:80", ("localhost", 80)),
        (
            "exporter.monitoring.svc.cluster.local.:10173",
            ("exporter.monitoring.svc.cluster.local.", 10173),
        ),
        ("[::1]:10173", ("::1", 10173)),
        ("[::]:10173", ("::", 10173)),
        ("[fe80::1%eth0]:10173", ("fe80::1%eth0", 10173)),
    ],
)
def test_valid_addresses_parse(address: str, parsed: tuple[str | None, int]) -> None:
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("[::1:10173", "missing ']' after the IPv6 address"),
        ("[::1]", "missing :PORT after the IPv6 address"),
        ("[::1]10173", "missing :PORT after the IPv6 address"),
        ("[127.0.0.1]:80", "'127.0.0.1' in brackets is not an IPv6 address"),
        ("::1:10173", "too many colons"),
        ("::1]:10173", "unexpected bracket"),
        ("10173", "missing :PORT"),
        ("", "missing :PORT"),
        (":", "port '' is not a number from 0 to 65535"),
        (":65536", "port '65536' is not a number"),
        (":-1", "port '-1' is not a number"),
        (":http", "port 'http' is not a number"),
        (":١٠١٧٣", "is not a number"),  # Arabic-Indic digits: str.isdigit() would take them
        ("my host:80", "'my host' is not a host name or IP address"),
        ("a..b:80", "'a..b' is not a host name"),
        ("x" * 64 + ":80", "is not a host name"),
    ],
)
def test_malformed_addresses_say_why(address: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_listen_address(address)
    assert reason in str(caught.value)
