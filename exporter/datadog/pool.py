"""One :class:`DatadogClient` per account, kept in step with the configuration.

Datadog rate-limits each organisation separately, so every account gets its own client (its
own session, keys and rate-limit state). On a reload, clients of accounts that stay keep
their state (a changed base URL forgets it, see ``DatadogClient.reconfigure``); new accounts
get a client and removed ones are closed once no query uses them.

Every client goes out the same way: the proxy variables of one environment (read once, at
start-up, as a Go program reads them) and the TLS trust of ``datadog.ca_file``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from yarl import URL

from ..clock import SYSTEM_CLOCK, Clock
from ..config.accounts import Account, BaseUrl, Environment, resolve_accounts, resolve_base_url
from ..config.errors import ConfigError
from ..config.schema import Config
from ..logs import Redactor
from ..selfmetrics import RateLimitView
from .client import DatadogClient
from .credentials import Credentials
from .proxies import ProxyError, ProxyRules

# (account, endpoint, code) for every answer (or failure) of every client.
ResponseCounter = Callable[[str, str, str], None]


@dataclass(frozen=True)
class Route:
    """Where one account's requests go, as people are shown it: never a key or a proxy login."""

    account: str
    url: str
    source: str  # the setting that chose the URL (Account.url_source)
    proxy: str  # "direct", or the proxy without its login and the variable naming it

    def line(self) -> str:
        return f"{self.account}: {self.url} (from {self.source}), {self.proxy}"


def routes(accounts: Sequence[Account], proxies: ProxyRules) -> list[Route]:
    """Each account's base URL, its source and the proxy its requests take."""
    found = []
    for account in accounts:
        proxy = proxies.proxy_for(URL(account.base_url))
        via = f"via proxy {proxy.shown} (from {proxy.variable})" if proxy else "direct"
        found.append(Route(account.name, account.base_url, account.url_source, via))
    return found


def uses_default_keys(account: Account) -> bool:
    """True for the account without key settings: it reads the DD_* variables."""
    return not (
        account.api_key_file or account.app_key_file or account.api_key_env or account.app_key_env
    )


class ClientPool:
    """The clients by account name; ``clients`` is the live mapping the scheduler reads."""

    def __init__(
        self,
        redactor: Redactor,
        default_credentials: Credentials,
        on_response: ResponseCounter,
        environ: Mapping[str, str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        """``environ`` (default: the process environment) holds the accounts' ``*_key_env``
        variables and HTTPS_PROXY / HTTP_PROXY / NO_PROXY; an unusable proxy variable is a
        ConfigError naming it. ``clock`` is the clients' (their rate-limit state's)."""
        self.redactor = redactor
        self.default_credentials = default_credentials
        self.on_response = on_response
        self.environ = environ
        self.clock = clock
        try:
            self.proxies = ProxyRules.from_environ(os.environ if environ is None else environ)
        except ProxyError as exc:
            raise ConfigError([(exc.variable, str(exc))], "environment") from None
        self.clients: dict[str, DatadogClient] = {}
        self.accounts: list[Account] = []  # the ones last applied

    def credentials(self, accounts: Sequence[Account]) -> dict[str, Credentials]:
        """Every account's keys, checked now: raises CredentialsError naming the account."""
        found = {}
        for account in accounts:
            if uses_default_keys(account):
                keys = self.default_credentials
            else:
                environ = None if self.environ is None else dict(self.environ)
                keys = Credentials.for_account(account, self.redactor, environ)
            keys.check()
            found[account.name] = keys
        return found

    def apply(
        self, accounts: Sequence[Account], credentials: Mapping[str, Credentials]
    ) -> list[DatadogClient]:
        """Move to ``accounts``; return the removed clients for the caller to close later."""
        wanted = {account.name: account for account in accounts}
        self.accounts = list(accounts)
        removed = [self.clients.pop(name) for name in list(self.clients) if name not in wanted]
        for name, account in wanted.items():
            client = self.clients.get(name)
            if client is None:
                self.clients[name] = DatadogClient(
                    account.base_url,
                    credentials=credentials[name],
                    redactor=self.redactor,
                    timeout=account.timeout,
                    max_response_size=account.max_response_size,
                    on_response=self._counter(name),
                    proxies=self.proxies,
                    ssl_context=account.ssl_context,
                    clock=self.clock,
                    url_source=account.url_source,
                )
            else:
                client.reconfigure(
                    account.base_url,
                    timeout=account.timeout,
                    max_response_size=account.max_response_size,
                    ssl_context=account.ssl_context,
                    url_source=account.url_source,
                )
                client.credentials = credentials[name]
        return removed

    def client(self, account: str) -> DatadogClient:
        """The account's current client (KeyError for an account the pool does not have)."""
        return self.clients[account]

    def routes(self, accounts: Sequence[Account]) -> list[Route]:
        """Where ``accounts``' requests go through this pool's proxy settings."""
        return routes(accounts, self.proxies)

    def _counter(self, account: str) -> Callable[[str, str], None]:
        def count(endpoint: str, code: str) -> None:
            self.on_response(endpoint, code, account)

        return count

    def rate_limit_views(self) -> list[RateLimitView]:
        """Every account's endpoints, for /metrics."""
        return [
            view
            for name, client in sorted(self.clients.items())
            for view in client.rate_limits.views(name)
        ]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


def default_account(config: Config, redactor: Redactor) -> tuple[BaseUrl, Credentials]:
    """The default account's base URL and keys, from the process environment as the
    exporter reads them (DD_API_URL, DD_SITE, DD_API_KEY, DD_APP_KEY; the keys are checked
    when the pool is built). Raises ConfigError for an unknown site."""
    url = resolve_base_url(config.datadog, Environment())
    return url, Credentials.from_environment(redactor, dict(os.environ))


def build_pool(
    config: Config,
    default_url: str | BaseUrl,
    default_credentials: Credentials,
    redactor: Redactor,
    on_response: ResponseCounter,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> ClientPool:
    """A client for every account of ``config``: the one way the exporter and the backfill
    build theirs. ``default_url`` and ``default_credentials`` are the default account's (the
    datadog: block and DD_* variables, or the demo's simulator); ``environ`` as for
    :class:`ClientPool`. Raises ConfigError (a proxy variable, datadog.ca_file) or
    CredentialsError (an account's keys missing), naming what to fix."""
    pool = ClientPool(redactor, default_credentials, on_response, environ, clock=clock)
    accounts = resolve_accounts(config, default_url)
    pool.apply(accounts, pool.credentials(accounts))
    return pool
