"""One :class:`DatadogClient` per account, kept in step with the configuration.

Datadog rate-limits each organisation separately, so every account gets its own client (its
own session, keys and rate-limit state). On a reload, clients of accounts that stay keep
their state (a changed base URL forgets it, see ``DatadogClient.reconfigure``); new accounts
get a client and removed ones are closed once no query uses them.

Every client goes out the same way: the proxy variables of one environment (read once, at
start-up, as a Go program reads them) and the TLS trust of ``datadog.ca_file``. The pool
itself is built from values; :class:`PoolBuilder` is where files and variables are read.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from yarl import URL

from ..clock import SYSTEM_CLOCK, Clock
from ..config.accounts import Account, BaseUrl, Environment, resolve_accounts, resolve_base_url
from ..config.errors import ConfigError
from ..config.schema import Config, load_ca_bundle
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
    """The clients by account name; ``clients`` is the live mapping the scheduler reads.

    Built from values (:class:`PoolBuilder` reads the files and variables): it reads no file
    and no environment itself."""

    def __init__(
        self,
        redactor: Redactor,
        proxies: ProxyRules,
        on_response: ResponseCounter,
        clock: Clock = SYSTEM_CLOCK,
    ):
        """``proxies`` carry every client's requests; ``clock`` is the clients' (their
        rate-limit state's)."""
        self.redactor = redactor
        self.proxies = proxies
        self.on_response = on_response
        self.clock = clock
        self.clients: dict[str, DatadogClient] = {}
        self.accounts: list[Account] = []  # the ones last applied

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


@dataclass(frozen=True)
class Clients:
    """What a pool is moved to, read and checked: the accounts (with datadog.ca_file's trust)
    and every account's keys by name."""

    accounts: list[Account]
    credentials: Mapping[str, Credentials]


def load_trust(config: Config) -> ssl.SSLContext | None:
    """The TLS trust of ``datadog.ca_file`` (None: the default), read now; ConfigError naming
    the key if the file became unusable since it was validated."""
    if config.datadog.ca_file is None:
        return None
    try:
        return load_ca_bundle(config.datadog.ca_file)
    except ValueError as exc:
        raise ConfigError([("datadog.ca_file", str(exc))]) from None


def proxy_rules(environ: Mapping[str, str]) -> ProxyRules:
    """The proxy variables of ``environ``; an unusable one is a ConfigError naming it."""
    try:
        return ProxyRules.from_environ(environ)
    except ProxyError as exc:
        raise ConfigError([(exc.variable, str(exc))], "environment") from None


@dataclass(frozen=True)
class PoolBuilder:
    """The I/O of client wiring, one way for start-up, reloads, the backfill and the online
    check: reads the proxy variables, ``datadog.ca_file`` and the accounts' keys (from
    ``environ``, the one snapshot the command line took, or from key files) and hands
    :class:`ClientPool` and :class:`Clients` the values.

    ``default_credentials`` are the default account's keys (the DD_* variables, or the demo's).
    """

    redactor: Redactor
    default_credentials: Credentials
    environ: Mapping[str, str]

    def proxies(self) -> ProxyRules:
        """HTTPS_PROXY / HTTP_PROXY / NO_PROXY; ConfigError naming an unusable variable."""
        return proxy_rules(self.environ)

    def credentials(self, accounts: Sequence[Account]) -> dict[str, Credentials]:
        """Every account's keys, checked now (key files read): raises CredentialsError
        naming the account."""
        found = {}
        for account in accounts:
            if uses_default_keys(account):
                keys = self.default_credentials
            else:
                keys = Credentials.for_account(account, self.redactor, self.environ)
            keys.check()
            found[account.name] = keys
        return found

    def clients(self, config: Config, default_url: str | BaseUrl) -> Clients:
        """The accounts of ``config`` (the default one at ``default_url``) and their keys.
        Raises ConfigError (datadog.ca_file) or CredentialsError (an account's keys)."""
        accounts = resolve_accounts(config, default_url, load_trust(config))
        return Clients(accounts, self.credentials(accounts))

    def pool(
        self,
        config: Config,
        default_url: str | BaseUrl,
        on_response: ResponseCounter,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> ClientPool:
        """A client for every account of ``config``; raises as :meth:`proxies` and
        :meth:`clients` do."""
        pool = ClientPool(self.redactor, self.proxies(), on_response, clock=clock)
        clients = self.clients(config, default_url)
        pool.apply(clients.accounts, clients.credentials)
        return pool


def default_account(
    config: Config, redactor: Redactor, environ: Mapping[str, str]
) -> tuple[BaseUrl, Credentials]:
    """The default account's base URL and keys, from ``environ`` as the exporter reads it
    (DD_API_URL, DD_SITE, DD_API_KEY, DD_APP_KEY; the keys are checked when the pool is
    built). Raises ConfigError for an unknown site."""
    url = resolve_base_url(config.datadog, Environment.from_environ(environ))
    return url, Credentials.from_environment(redactor, environ)


def build_pool(
    config: Config,
    default_url: str | BaseUrl,
    default_credentials: Credentials,
    redactor: Redactor,
    on_response: ResponseCounter,
    *,
    environ: Mapping[str, str],
    clock: Clock = SYSTEM_CLOCK,
) -> ClientPool:
    """A client for every account of ``config``: the one way the exporter and the backfill
    build theirs (through :class:`PoolBuilder`). ``default_url`` and ``default_credentials``
    are the default account's (the datadog: block and DD_* variables, or the demo's
    simulator); ``environ`` is the command line's snapshot of the environment. Raises
    ConfigError (a proxy variable, datadog.ca_file) or CredentialsError (an account's keys
    missing), naming what to fix."""
    builder = PoolBuilder(redactor, default_credentials, environ)
    return builder.pool(config, default_url, on_response, clock=clock)
