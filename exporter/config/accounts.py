"""Which Datadog organisations the exporter talks to: base URLs, limits and key sources.

Resolves the ``accounts:`` list (or the ``datadog:`` block and ``DD_*`` variables) into
:class:`Account` values; it does no I/O.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

from .errors import ConfigError
from .schema import (
    DEFAULT_ACCOUNT,
    SITES,
    AccountSettings,
    Config,
    DatadogSettings,
)


@dataclass(frozen=True)
class Environment:
    """``DD_SITE`` and ``DD_API_URL`` (the keys are read by credentials.py, never here)."""

    site: str | None = None
    api_url: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Environment:
        """The two variables of ``environ``, their names in any case (as pydantic-settings
        read them before)."""
        found = {name.upper(): value for name, value in environ.items()}
        return cls(site=found.get("DD_SITE"), api_url=found.get("DD_API_URL"))


# Where a base URL came from, as --config.check, the start-up log and the landing page say.
SOURCE_DEFAULT = "default"


@dataclass(frozen=True)
class BaseUrl:
    """A Datadog API base URL and which setting chose it (``DD_API_URL``, ``datadog.api_url``,
    ``datadog.site``, ``DD_SITE``, ``accounts[N].api_url``, ... or ``default``)."""

    url: str
    source: str

    def __str__(self) -> str:
        return self.url


def resolve_base_url(config: DatadogSettings, env: Environment) -> BaseUrl:
    """The API base URL and its source: DD_API_URL, then datadog.api_url, then the site
    (datadog.site, then DD_SITE), else the default site. ConfigError naming the variable for
    an unusable DD_API_URL or an unknown DD_SITE in effect."""
    if env.api_url:
        if not env.api_url.startswith(("http://", "https://")):
            raise ConfigError(
                [("DD_API_URL", "must start with http:// or https://")], "environment"
            )
        return BaseUrl(env.api_url.rstrip("/"), "DD_API_URL")
    if config.api_url:
        return BaseUrl(config.api_url, "datadog.api_url")
    if config.site:
        return BaseUrl(f"https://api.{config.site}", "datadog.site")
    if env.site:
        if env.site not in SITES:
            raise ConfigError(
                [("DD_SITE", f"unknown Datadog site {env.site!r}; one of {', '.join(SITES)}")],
                "environment",
            )
        return BaseUrl(f"https://api.{env.site}", "DD_SITE")
    return BaseUrl("https://api.datadoghq.com", SOURCE_DEFAULT)


def base_url(config: DatadogSettings, env: Environment) -> str:
    """The API base URL: DD_API_URL, then datadog.api_url, then the site (file, env, default)."""
    return resolve_base_url(config, env).url


def unused_environment(config: Config, env: Environment) -> list[str]:
    """Notes on DD_SITE / DD_API_URL set but overridden by the file, which a reader of the
    environment alone would believe in effect."""
    notes = []
    in_effect = None if config.accounts else resolve_base_url(config.datadog, env).source
    for name, value in (("DD_API_URL", env.api_url), ("DD_SITE", env.site)):
        if value and in_effect != name:
            winner = "the accounts: list" if config.accounts else in_effect
            notes.append(f"{name} is set but not used: {winner} sets the base URL")
    return notes


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
    # Which setting chose base_url (see BaseUrl.source).
    url_source: str = SOURCE_DEFAULT
    # From datadog.ca_file; None means the default trust (system CAs, SSL_CERT_FILE).
    ssl_context: ssl.SSLContext | None = dataclass_field(default=None, compare=False, repr=False)


def resolve_accounts(
    config: Config, default_url: str | BaseUrl, trust: ssl.SSLContext | None = None
) -> list[Account]:
    """The accounts to build clients for: the ``accounts:`` list, or else the default account
    at ``default_url`` (from :func:`resolve_base_url`: the datadog: block and DD_* variables;
    a plain string is shown as given by the caller).

    ``trust`` is ``datadog.ca_file`` loaded (datadog/pool.py ``load_trust``), shared by every
    account; None: the default trust.
    """
    defaults = config.datadog
    context = trust
    if not config.accounts:
        given = default_url if isinstance(default_url, BaseUrl) else BaseUrl(default_url, "given")
        return [
            Account(
                DEFAULT_ACCOUNT,
                given.url.rstrip("/"),
                defaults.timeout,
                defaults.max_response_size,
                url_source=given.source,
                ssl_context=context,
            )
        ]
    return [
        Account(
            name=account.name,
            base_url=account.api_url or f"https://api.{account.site or 'datadoghq.com'}",
            url_source=_account_url_source(index, account),
            timeout=account.timeout if account.timeout is not None else defaults.timeout,
            max_response_size=account.max_response_size or defaults.max_response_size,
            api_key_file=account.api_key_file,
            app_key_file=account.app_key_file,
            api_key_env=account.api_key_env,
            app_key_env=account.app_key_env,
            ssl_context=context,
        )
        for index, account in enumerate(config.accounts)
    ]


def _account_url_source(index: int, account: AccountSettings) -> str:
    if account.api_url:
        return f"accounts[{index}].api_url"
    if account.site:
        return f"accounts[{index}].site"
    return SOURCE_DEFAULT
