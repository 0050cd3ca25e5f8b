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

Owns the schema and the :class:`ssl.SSLContext` built from it; the basic-auth middleware
that checks the users' hashes is the server's (exporter/basicauth.py).
Everything is checked at start-up: a bad file, a certificate that does not load or a hash
that is not bcrypt is a :class:`WebConfigError`, never a surprise at the first scrape.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import bcrypt
import yaml
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
_BCRYPT = re.compile(r"^(\$2[aby]\$)(\d\d)(\$[./A-Za-z0-9]{53})$")
# bcrypt's own bounds on the cost; outside them it refuses the hash when checking.
BCRYPT_COSTS = range(4, 32)


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
    """What the server needs: a TLS context (or None for plain HTTP) and the basic-auth users
    with their bcrypt hashes (none: no login asked; the server's basicauth checks them)."""

    ssl_context: ssl.SSLContext | None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict)

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
    users = {user: hashed.encode() for user, hashed in config.basic_auth_users.items()}
    return WebSecurity(context, users)


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
