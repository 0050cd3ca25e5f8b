"""The ``--web.listen-address`` grammar: what a listen address means, and how a failure to
serve one is worded.

Pure: parsing and wording only; the server binds (exporter/app.py), the command line turns a
parse error into exit 2 (exporter/cli.py).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket

# A host name or IPv4 address: dot-separated labels of letters, digits, '-' and '_'.
_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """``:10173`` -> (None = all interfaces, 10173); ``127.0.0.1:80``; ``[::1]:80``; ``host:80``.

    Raises ValueError saying what is wrong; the rules are Go's ``net.SplitHostPort`` (an IPv6
    address needs brackets), so the flag reads as it does for every other exporter.
    """
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError("missing ']' after the IPv6 address")
        host, rest = address[1:end], address[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError("missing :PORT after the IPv6 address")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep:
            raise ValueError("missing :PORT (expected HOST:PORT or :PORT)")
        if "[" in host or "]" in host:
            raise ValueError("unexpected bracket (write an IPv6 address as [::1]:PORT)")
        if ":" in host:
            raise ValueError("too many colons (write an IPv6 address as [::1]:PORT)")
        if host and not _HOST_NAME.fullmatch(host):
            raise ValueError(f"{host!r} is not a host name or IP address")
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise ValueError(f"port {port_text!r} is not a number from 0 to 65535")
    return (host or None), int(port_text)


class ListenError(Exception):
    """A listen address that parses but cannot be served: it does not resolve, or binding
    fails. The message names the address and the cause, in the words of the system call."""


# What to do about the common bind failures, after the system's own words.
_BIND_HINTS = {
    errno.EADDRINUSE: "another process listens there; stop it or choose another port",
    errno.EACCES: "a port below 1024 needs root or CAP_NET_BIND_SERVICE",
    errno.EADDRNOTAVAIL: "the address is not one of this machine's",
}


def describe_listen_failure(address: str, host: str | None, port: int, exc: OSError) -> str:
    """One line: the flag, the address, and why it cannot be served (with a hint if known)."""
    if isinstance(exc, socket.gaierror):
        reason = exc.strerror or str(exc)
        return f"--web.listen-address {address}: cannot resolve {host}: {reason}"
    if exc.errno is None:
        return f"--web.listen-address {address}: cannot listen: {exc}"
    hint = _BIND_HINTS.get(exc.errno)
    if exc.errno == errno.EACCES and port >= 1024:
        hint = None  # not the privileged-port rule: a security module, say
    reason = os.strerror(exc.errno) + (f" ({hint})" if hint else "")
    return f"--web.listen-address {address}: cannot listen: {reason}"
