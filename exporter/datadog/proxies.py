"""Which proxy, if any, carries a request to Datadog: ``HTTPS_PROXY``, ``HTTP_PROXY`` and
``NO_PROXY`` read the way Go's ``net/http`` reads them (golang.org/x/net/http/httpproxy), so
the exporter leaves a cluster the same way every Go exporter next to it does.

Owns parsing those variables and matching a URL against them (pure: the environment comes in
as a mapping). A proxy's login only leaves as the ``Proxy-Authorization`` header the proxy
needs; :attr:`Proxy.shown` is the form for messages.

Rules, as in Go:

- ``https://`` URLs use ``HTTPS_PROXY``, ``http://`` URLs ``HTTP_PROXY`` (no fallback from one
  to the other); the upper-case name wins over the lower-case one when both are set.
- A value without a scheme (``proxy:3128``) means ``http://proxy:3128``.
- ``localhost`` and loopback addresses (127.0.0.0/8, ::1) are never proxied.
- ``NO_PROXY`` is a comma-separated list: ``*`` (nothing is proxied); an IP address, with an
  optional port (``10.0.0.1``, ``10.0.0.1:8080``, ``[::1]:80``); a CIDR range (``10.0.0.0/8``);
  a domain, which matches itself and its subdomains (``example.com``), or only its subdomains
  with a leading ``.`` or ``*.`` (``.example.com``), each with an optional port.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from yarl import URL

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# aiohttp speaks HTTP to a proxy (plain, or TLS with https://); SOCKS would need another library.
SUPPORTED_SCHEMES = ("http", "https")


class ProxyError(ValueError):
    """A proxy variable that cannot be used; ``variable`` names it, str() never shows a password."""

    def __init__(self, variable: str, message: str):
        super().__init__(message)
        self.variable = variable


@dataclass(frozen=True)
class Proxy:
    """One proxy: where it is (no credentials in ``url``), its login, and where it came from."""

    url: URL
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    variable: str = ""

    @property
    def shown(self) -> str:
        """The proxy as messages name it: scheme, host and port, never the login."""
        return f"{self.url.scheme}://{self.url.host_port_subcomponent}"

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` header value for the login, if there is one."""
        if self.user is None and self.password is None:
            return None
        login = f"{self.user or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(login).decode("ascii")

    @property
    def secrets(self) -> list[str]:
        """What a redactor must remove from any text: the password (plain and URL-encoded)
        and the header that carries it."""
        if not self.password:
            return []
        return [self.password, quote(self.password, safe=""), self.authorization or ""]


def _env(environ: Mapping[str, str], name: str) -> tuple[str, str]:
    """The first non-empty of NAME and name, with the variable it came from (Go's order)."""
    for variable in (name, name.lower()):
        value = environ.get(variable, "").strip()
        if value:
            return variable, value
    return name, ""


def _url(value: str) -> URL | None:
    try:
        url = URL(value)
        url.port  # noqa: B018 - an invalid port may only show when it is read
    except ValueError:
        return None
    return url


def parse_proxy(variable: str, value: str) -> Proxy | None:
    """A proxy variable's value as a :class:`Proxy`; ProxyError when it cannot be used.

    Messages never quote the value: it may hold a password.
    """
    if not value:
        return None
    # Go's rule: a value without a scheme (proxy:3128, 10.0.0.1:3128) means http://value.
    url = _url(value if "://" in value else "http://" + value)
    if url is None:
        raise ProxyError(variable, "not a valid proxy URL (expected http://HOST:PORT)")
    if url.scheme not in SUPPORTED_SCHEMES:
        raise ProxyError(
            variable,
            f"{url.scheme}:// proxies are not supported (use an http:// or https:// proxy)",
        )
    if not url.host:
        raise ProxyError(variable, "the proxy URL has no host")
    bare = URL.build(scheme=url.scheme, host=url.raw_host or "", port=url.explicit_port)
    return Proxy(bare, url.user, url.password, variable)


@dataclass(frozen=True)
class _Rule:
    """One NO_PROXY entry."""

    network: IpNetwork | None = None
    ip: IpAddress | None = None
    domain: str = ""  # with a leading dot: ".example.com"
    match_domain_itself: bool = False
    port: str = ""  # "" matches any port

    def matches(self, host: str, port: str, ip: IpAddress | None) -> bool:
        if self.network is not None:
            return ip is not None and ip in self.network
        if self.ip is not None:
            return ip is not None and ip == self.ip and self.port in ("", port)
        if host.endswith(self.domain) or (self.match_domain_itself and host == self.domain[1:]):
            return self.port in ("", port)
        return False


def _ip(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _split_host_port(entry: str) -> tuple[str, str]:
    """``host:port``, ``[v6]:port`` -> (host, port); anything else is all host (Go's rule)."""
    if entry.startswith("["):
        end = entry.find("]")
        if end > 0 and entry[end + 1 : end + 2] == ":" and entry[end + 2 :].isdigit():
            return entry[1:end], entry[end + 2 :]
        return entry.strip("[]"), ""
    host, sep, port = entry.rpartition(":")
    if sep and ":" not in host and port.isdigit():
        return host, port
    return entry, ""


def _ascii_domain(domain: str) -> str:
    try:
        labels = domain.split(".")
        return ".".join(label.encode("idna").decode("ascii") if label else "" for label in labels)
    except UnicodeError:
        return domain


def parse_no_proxy(value: str) -> tuple[bool, tuple[_Rule, ...]]:
    """(everything bypassed, the rules) of a NO_PROXY value; malformed entries are ignored."""
    rules: list[_Rule] = []
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True, ()
        if "/" in entry:
            with contextlib.suppress(ValueError):  # Go ignores what it cannot read
                rules.append(_Rule(network=ipaddress.ip_network(entry, strict=False)))
            continue
        host, port = _split_host_port(entry)
        if not host:
            continue
        ip = _ip(host)
        if ip is not None:
            rules.append(_Rule(ip=ip, port=port))
            continue
        if host.startswith("*."):
            host = host[1:]
        itself = not host.startswith(".")
        domain = _ascii_domain(host if not itself else "." + host)
        if domain.strip("."):
            rules.append(_Rule(domain=domain, match_domain_itself=itself, port=port))
    return False, tuple(rules)


@dataclass(frozen=True)
class ProxyRules:
    """The proxy settings of one environment; :meth:`proxy_for` picks one for a URL."""

    http: Proxy | None = None
    https: Proxy | None = None
    bypass_all: bool = False
    no_proxy: tuple[_Rule, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProxyRules:
        """Read HTTP_PROXY, HTTPS_PROXY and NO_PROXY (either case); ProxyError if unusable."""
        http = parse_proxy(*_env(environ, "HTTP_PROXY"))
        https = parse_proxy(*_env(environ, "HTTPS_PROXY"))
        bypass_all, rules = parse_no_proxy(_env(environ, "NO_PROXY")[1])
        return cls(http, https, bypass_all, rules)

    @property
    def secrets(self) -> list[str]:
        return [s for proxy in (self.http, self.https) if proxy is not None for s in proxy.secrets]

    def proxy_for(self, url: URL) -> Proxy | None:
        """The proxy for a request to ``url``, or None to connect directly."""
        proxy = {"https": self.https, "http": self.http}.get(url.scheme)
        if proxy is None or self.bypass_all:
            return None
        host = (url.raw_host or "").lower().rstrip(".")
        if not host:
            return proxy
        port = str(url.port or "")
        ip = _ip(host)
        if host == "localhost" or (ip is not None and ip.is_loopback):
            return None
        if any(rule.matches(host, port, ip) for rule in self.no_proxy):
            return None
        return proxy
