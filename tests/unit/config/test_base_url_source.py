"""Where requests go is visible: each account's base URL with the setting that chose it, and
the proxy without its login."""

from __future__ import annotations

import pytest

from exporter.config.accounts import (
    Environment,
    resolve_accounts,
    resolve_base_url,
    unused_environment,
)
from exporter.config.errors import ConfigError
from exporter.config.schema import parse_config
from exporter.datadog.pool import routes
from exporter.datadog.proxies import ProxyRules

QUERY = "connections: [{name: q}]\n"


def env(site: str | None = None, api_url: str | None = None) -> Environment:
    return Environment(site=site, api_url=api_url)


@pytest.mark.parametrize(
    ("datadog", "environment", "url", "source"),
    [
        ("{}", {}, "https://api.datadoghq.com", "default"),
        ("{}", {"site": "datadoghq.eu"}, "https://api.datadoghq.eu", "DD_SITE"),
        (
            "{site: us5.datadoghq.com}",
            {"site": "datadoghq.eu"},
            "https://api.us5.datadoghq.com",
            "datadog.site",
        ),
        (
            "{api_url: 'http://127.0.0.1:9'}",
            {"site": "datadoghq.eu"},
            "http://127.0.0.1:9",
            "datadog.api_url",
        ),
        (
            "{api_url: 'http://127.0.0.1:9'}",
            {"api_url": "http://127.0.0.1:8/"},
            "http://127.0.0.1:8",
            "DD_API_URL",
        ),
    ],
)
def test_each_of_the_sources_is_named(
    datadog: str, environment: dict[str, str], url: str, source: str
) -> None:
    config = parse_config(f"datadog: {datadog}\n{QUERY}")
    chosen = resolve_base_url(config.datadog, env(**environment))
    assert (chosen.url, chosen.source) == (url, source)
    (account,) = resolve_accounts(config, chosen)
    assert (account.base_url, account.url_source) == (url, source)


def test_an_unknown_dd_site_in_effect_is_an_error_naming_it() -> None:
    config = parse_config(QUERY)
    with pytest.raises(ConfigError) as caught:
        resolve_base_url(config.datadog, env(site="datadoghq.co"))
    assert caught.value.problems[0][0] == "DD_SITE"
    assert "'datadoghq.co'" in str(caught.value)


def test_a_dd_api_url_that_is_no_url_is_an_error() -> None:
    with pytest.raises(ConfigError, match="DD_API_URL: must start with http"):
        resolve_base_url(parse_config(QUERY).datadog, env(api_url="api.datadoghq.eu"))


def test_an_overridden_variable_is_a_note() -> None:
    config = parse_config("datadog: {site: datadoghq.eu}\n" + QUERY)
    assert unused_environment(config, env(site="us3.datadoghq.com")) == [
        "DD_SITE is set but not used: datadog.site sets the base URL"
    ]
    assert unused_environment(config, env()) == []


def test_accounts_differ_and_each_says_why() -> None:
    config = parse_config(
        "accounts:\n"
        "  - {name: eu, site: datadoghq.eu, api_key_env: A, app_key_env: B}\n"
        "  - {name: lab, api_url: 'http://127.0.0.1:9', api_key_env: A, app_key_env: B}\n"
        "  - {name: us, api_key_env: A, app_key_env: B}\n"
        "connections: [{name: q, account: eu}]\n"
    )
    accounts = resolve_accounts(config, "https://unused.example")
    found = [(a.name, a.base_url, a.url_source) for a in accounts]
    assert found == [
        ("eu", "https://api.datadoghq.eu", "accounts[0].site"),
        ("lab", "http://127.0.0.1:9", "accounts[1].api_url"),
        ("us", "https://api.datadoghq.com", "default"),
    ]
    # DD_SITE does not reach accounts: the note says so.
    assert unused_environment(config, env(site="datadoghq.eu")) == [
        "DD_SITE is set but not used: the accounts: list sets the base URL"
    ]


def test_the_route_names_the_proxy_but_never_its_login() -> None:
    config = parse_config(QUERY)
    (account,) = resolve_accounts(config, resolve_base_url(config.datadog, env()))
    proxies = ProxyRules.from_environ({"HTTPS_PROXY": "http://alice:s3cr3t-pw@proxy.corp:3128"})
    (route,) = routes([account], proxies)
    assert route.line() == (
        "default: https://api.datadoghq.com (from default), "
        "via proxy http://proxy.corp:3128 (from HTTPS_PROXY)"
    )
    assert "s3cr3t" not in route.line() and "alice" not in route.line()
    (direct,) = routes([account], ProxyRules.from_environ({"NO_PROXY": "*"}))
    assert direct.proxy == "direct"
