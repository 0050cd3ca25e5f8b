"""``--web.config.file``: TLS and basic auth for the exporter's own HTTP server.

The file uses the Prometheus exporter-toolkit format, so one file can protect every exporter
of a fleet::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2b$12$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Owns the schema, the :class:`ssl.SSLContext` built from it and the basic-auth middleware.
Everything is checked at start-up: a bad file, a certificate that does not load or a hash
that is not bcrypt is a :class:`WebConfigError`, never a surprise at the first scrape.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
import re
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import aiohttp
import bcrypt
import yaml
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import AfterValidator, Field, ValidationError, model_validator

from .errors import ConfigError, UnreadableFileError, load_yaml, problems_from, read_text_file
from .schema import StrictModel

ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TlsVersion = Literal["TLS12", "TLS13"]
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Python's TLS stack verifies every client certificate it asks for: it cannot request or
# require a certificate and then accept it unverified, as Go's two modes below do.
UNSUPPORTED_CLIENT_AUTH = {
    "RequestClientCert": "VerifyClientCertIfGiven",
    "RequireAnyClientCert": "RequireAndVerifyClientCert",
}
# Probes (kubelet, load balancers) carry no credentials; these paths reveal nothing.
OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})
REALM = "datadog-cnm-exporter"
_BCRYPT = re.compile(r"^(\$2[aby]\$)(\d\d)(\$[./A-Za-z0-9]{53})$")
# bcrypt's own bounds on the cost; outside them it refuses the hash when checking.
BCRYPT_COSTS = range(4, 32)
# Successful checks are remembered so a scrape every few seconds does not pay for bcrypt.
AUTH_CACHE_SIZE = 256


class WebConfigError(ConfigError):
    """The web configuration file is invalid or names files that do not load."""


class UnreadableWebConfigError(WebConfigError, UnreadableFileError):
    """The web configuration file itself cannot be read (one line: the path and the cause)."""


def _bcrypt_hash(value: str) -> str:
    """A hash bcrypt will check: its shape, its cost, and a salt bcrypt accepts.

    The salt is tried by bcrypt itself, on a copy of the hash at the lowest cost (about a
    millisecond), so a hash it would refuse at the first login fails here instead of turning
    the right password into an HTTP 500.
    """
    match = _BCRYPT.match(value)
    if match is None:
        raise ValueError("must be a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)")
    prefix, cost, rest = match.groups()
    if int(cost) not in BCRYPT_COSTS:
        raise ValueError(f"bcrypt cost {cost} is out of range (04 to 31)")
    try:
        bcrypt.checkpw(b"", f"{prefix}{BCRYPT_COSTS.start:02d}{rest}".encode())
    except ValueError:
        raise ValueError("bcrypt rejects this hash: its salt is malformed") from None
    return value


BcryptHash = Annotated[str, AfterValidator(_bcrypt_hash)]


class TlsServerConfig(StrictModel):
    cert_file: Path
    key_file: Path
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion = "TLS13"

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        better = UNSUPPORTED_CLIENT_AUTH.get(self.client_auth_type)
        if better is not None:
            raise ValueError(
                f"client_auth_type {self.client_auth_type} is not supported (Python's TLS stack "
                f"verifies every client certificate it asks for); use {better} with "
                "client_ca_file"
            )
        verifies = self.client_auth_type != "NoClientCert"
        if verifies and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if not verifies and self.client_ca_file is not None:
            raise ValueError(
                "client_ca_file is set but client_auth_type is NoClientCert; "
                "set client_auth_type to VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError("min_version is above max_version")
        return self


class WebConfig(StrictModel):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, BcryptHash] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_without_colon(self) -> WebConfig:
        for user in self.basic_auth_users:
            if not user or ":" in user:
                raise ValueError(f"basic_auth_users: invalid user name {user!r} (empty or ':')")
        return self


@dataclass(frozen=True)
class WebSecurity:
    """What the server needs: a TLS context (or None for plain HTTP) and its middlewares."""

    ssl_context: ssl.SSLContext | None
    middlewares: tuple[Middleware, ...]

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"


def load_web_config(path: Path) -> WebSecurity:
    """Read, validate and apply ``path``; raise WebConfigError naming the bad key or file."""
    source = f"web configuration {path}"
    text = read_text_file(path, "web configuration file", UnreadableWebConfigError)
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "not YAML"
        raise WebConfigError([("", f"invalid YAML: {problem}")], source) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise WebConfigError([("", "the top level must be a mapping")], source)
    try:
        config = WebConfig.model_validate(raw)
    except ValidationError as exc:
        # The shared translator, told not to echo values: a plaintext password written where
        # its bcrypt hash belongs would otherwise be printed at start-up.
        raise WebConfigError(problems_from(exc, raw, echo_values=False), source) from None
    return build_security(config, path.parent, source)


def build_security(config: WebConfig, base: Path, source: str = "web configuration") -> WebSecurity:
    context = (
        build_ssl_context(config.tls_server_config, base, source)
        if config.tls_server_config is not None
        else None
    )
    middlewares: tuple[Middleware, ...] = ()
    if config.basic_auth_users:
        auth = BasicAuth({u: h.encode() for u, h in config.basic_auth_users.items()})
        middlewares = (auth_middleware(auth),)
    return WebSecurity(context, middlewares)


def build_ssl_context(tls: TlsServerConfig, base: Path, source: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    cert, key = base / tls.cert_file, base / tls.key_file
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(
            [("tls_server_config.cert_file", f"cannot load {cert} with {key}: {_why(exc)}")],
            source,
        ) from None
    if tls.client_ca_file is not None:
        cafile = base / tls.client_ca_file
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(
                [("tls_server_config.client_ca_file", f"cannot load {cafile}: {_why(exc)}")],
                source,
            ) from None
        context.verify_mode = (
            ssl.CERT_REQUIRED
            if tls.client_auth_type == "RequireAndVerifyClientCert"
            else ssl.CERT_OPTIONAL
        )
    return context


def _why(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes."""

    def __init__(self, users: Mapping[str, bytes]):
        self._users = dict(users)
        self._cost = max((int(h[4:6]) for h in self._users.values()), default=10)
        # Cache keys are keyed hashes, so the cache never holds a password and a lookup's
        # timing says nothing about one.
        self._cache_key = os.urandom(32)
        self._good: OrderedDict[bytes, None] = OrderedDict()

    async def allows(self, header: str | None) -> bool:
        credentials = _user_and_password(header)
        if credentials is None:
            return False
        user, password = credentials
        digest = hmac.new(self._cache_key, f"{user}\0{password}".encode(), hashlib.sha256)
        token = digest.digest()
        if token in self._good:
            self._good.move_to_end(token)
            return True
        # bcrypt takes tens of milliseconds by design: keep it off the event loop.
        if not await asyncio.to_thread(self._check, user, password):
            return False
        self._good[token] = None
        if len(self._good) > AUTH_CACHE_SIZE:
            self._good.popitem(last=False)
        return True

    def _check(self, user: str, password: str) -> bool:
        known = self._users.get(user)
        # An unknown user is checked against a dummy hash of the same cost, so a wrong name
        # takes as long as a wrong password and names cannot be probed by timing.
        matches = bcrypt.checkpw(password.encode(), known or _dummy_hash(self._cost))
        return known is not None and matches


@functools.cache
def _dummy_hash(cost: int) -> bytes:
    return bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=max(4, min(cost, 31))))


def _user_and_password(header: str | None) -> tuple[str, str] | None:
    """``Basic dXNlcjpwYXNz`` -> ("user", "pass"); None for anything else.

    UTF-8, as the challenge announces (``charset="UTF-8"``, RFC 7617), not aiohttp's default.
    """
    if not header:
        return None
    try:
        # UnicodeError (not UTF-8, non-ASCII base64) is a ValueError too.
        decoded = aiohttp.BasicAuth.decode(header, encoding="utf-8")
    except ValueError:
        return None
    return decoded.login, decoded.password


def auth_middleware(auth: BasicAuth, open_paths: frozenset[str] = OPEN_PATHS) -> Middleware:
    @web.middleware
    async def require_basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths or await auth.allows(request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(
            status=401,
            text="Unauthorized.\n",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )

    return require_basic_auth
