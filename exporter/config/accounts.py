"""Which Datadog organisations the exporter talks to: base URLs, limits and key sources.

Resolves the ``accounts:`` list (or the ``datadog:`` block and ``DD_*`` variables) into
:class:`Account` values; it does no I/O.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError
from .schema import DEFAULT_ACCOUNT, SITES, Config, DatadogSettings, load_ca_bundle


class Environment(BaseSettings):
    """``DD_SITE`` and ``DD_API_URL`` (the keys are read by credentials.py, never here)."""

    model_config = SettingsConfigDict(env_prefix="DD_", extra="ignore", frozen=True)

    site: str | None = None
    api_url: str | None = None


def base_url(config: DatadogSettings, env: Environment) -> str:
    """The API base URL: DD_API_URL, then datadog.api_url, then the site (file, env, default)."""
    if env.api_url:
        return env.api_url.rstrip("/")
    if config.api_url:
        return config.api_url
    site = config.site or env.site or "datadoghq.com"
    if site not in SITES:
        raise ConfigError(
            [("DD_SITE", f"unknown Datadog site {site!r}; one of {', '.join(SITES)}")]
        )
    return f"https://api.{site}"


@dataclass(frozen=True)
class Account:
    """One Datadog organisation as the exporter talks to it: URL, limits and key sources.

    All four key fields None means the ``DD_API_KEY``/``DD_APP_KEY`` (or ``_FILE``) variables.
    """

    name: str
    base_url: str
    timeout: float
    max_response_size: int
    api_key_file: Path | None = None
    app_key_file: Path | None = None
    api_key_env: str | None = None
    app_key_env: str | None = None
    # From datadog.ca_file; None means the default trust (system CAs, SSL_CERT_FILE).
    ssl_context: ssl.SSLContext | None = dataclass_field(default=None, compare=False, repr=False)


def resolve_accounts(config: Config, default_url: str) -> list[Account]:
    """The accounts to build clients for: the ``accounts:`` list, or else the default account
    at ``default_url`` (from :func:`base_url`: the datadog: block and DD_* variables).

    Loads ``datadog.ca_file`` (once, shared by every account); ConfigError naming the key if
    it became unusable since it was validated.
    """
    defaults = config.datadog
    context = None
    if defaults.ca_file is not None:
        try:
            context = load_ca_bundle(defaults.ca_file)
        except ValueError as exc:
            raise ConfigError([("datadog.ca_file", str(exc))]) from None
    if not config.accounts:
        return [
            Account(
                DEFAULT_ACCOUNT,
                default_url.rstrip("/"),
                defaults.timeout,
                defaults.max_response_size,
                ssl_context=context,
            )
        ]
    return [
        Account(
            name=account.name,
            base_url=account.api_url or f"https://api.{account.site or 'datadoghq.com'}",
            timeout=account.timeout if account.timeout is not None else defaults.timeout,
            max_response_size=account.max_response_size or defaults.max_response_size,
            api_key_file=account.api_key_file,
            app_key_file=account.app_key_file,
            api_key_env=account.api_key_env,
            app_key_env=account.app_key_env,
            ssl_context=context,
        )
        for account in config.accounts
    ]
