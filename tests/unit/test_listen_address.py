"""--web.listen-address: Go's HOST:PORT rules, a reason for every refusal, and the words for an
address that cannot be served."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from exporter.listen import describe_listen_failure, parse_listen_address


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


@pytest.mark.parametrize(
    ("error", "port", "said"),
    [
        (
            OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)),
            8080,
            f"{os.strerror(errno.EADDRINUSE)} (another process listens there",
        ),
        (
            OSError(errno.EACCES, os.strerror(errno.EACCES)),
            80,
            "(a port below 1024 needs root or CAP_NET_BIND_SERVICE)",
        ),
        (
            OSError(errno.EADDRNOTAVAIL, os.strerror(errno.EADDRNOTAVAIL)),
            8080,
            "(the address is not one of this machine's)",
        ),
    ],
)
def test_a_bind_failure_names_the_flag_the_cause_and_a_hint(
    error: OSError, port: int, said: str
) -> None:
    line = describe_listen_failure(f"10.1.2.3:{port}", "10.1.2.3", port, error)
    assert line.startswith(f"--web.listen-address 10.1.2.3:{port}: cannot listen: ")
    assert said in line


def test_permission_denied_above_1024_gives_no_privileged_port_hint() -> None:
    """EACCES on a high port is a security module's doing, not the <1024 rule."""
    error = OSError(errno.EACCES, os.strerror(errno.EACCES))
    line = describe_listen_failure("127.0.0.1:8080", "127.0.0.1", 8080, error)
    assert (
        line == f"--web.listen-address 127.0.0.1:8080: cannot listen: {os.strerror(errno.EACCES)}"
    )


def test_a_name_that_does_not_resolve_says_so() -> None:
    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    line = describe_listen_failure("nowhere.invalid:80", "nowhere.invalid", 80, error)
    assert line == (
        "--web.listen-address nowhere.invalid:80: cannot resolve nowhere.invalid: "
        "Name or service not known"
    )
