"""Several Datadog organisations in one file: validation, defaults, URLs and key sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.app import build_jobs, shard_key
from exporter.config.accounts import Environment, base_url, resolve_accounts
from exporter.config.errors import ConfigError
from exporter.config.schema import DEFAULT_ACCOUNT, parse_config
from exporter.datadog.credentials import Credentials, CredentialsError
from exporter.logs import Redactor

TWO_ACCOUNTS = """
datadog: {timeout: 7s}
accounts:
  - name: eu
    site: datadoghq.eu
    api_key_file: /etc/datadog/eu/api-key
    app_key_file: /etc/datadog/eu/app-key
  - name: us
    api_url: http://127.0.0.1:9/
    api_key_env: DD_US_API_KEY
    app_key_env: DD_US_APP_KEY
    timeout: 3s
connections:
  - {name: svc, account: eu}
  - {name: edge, account: us}
"""


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.problems


def test_accounts_resolve_to_urls_timeouts_and_key_sources() -> None:
    config = parse_config(TWO_ACCOUNTS)
    eu, us = resolve_accounts(config, "https://unused.example")
    assert (eu.name, eu.base_url, eu.timeout) == ("eu", "https://api.datadoghq.eu", 7.0)
    assert eu.api_key_file == Path("/etc/datadog/eu/api-key")
    assert (us.base_url, us.timeout, us.api_key_env) == ("http://127.0.0.1:9", 3.0, "DD_US_API_KEY")
    assert [config.account_of(q) for _, q in config.all_queries()] == ["eu", "us"]
    assert config.account_label


def test_without_accounts_the_datadog_block_is_the_default_account() -> None:
    config = parse_config("datadog: {site: datadoghq.eu}\nconnections: [{name: a}]")
    (account,) = resolve_accounts(config, base_url(config.datadog, Environment()))
    assert (account.name, account.base_url) == (DEFAULT_ACCOUNT, "https://api.datadoghq.eu")
    assert [shard_key(job) for job in build_jobs(config)] == [(DEFAULT_ACCOUNT, "connections", "a")]
    assert not config.account_label


def test_one_account_needs_no_account_key_on_queries() -> None:
    config = parse_config(
        "accounts: [{name: only, api_key_env: A, app_key_env: B}]\nconnections: [{name: a}]"
    )
    assert [shard_key(job) for job in build_jobs(config)] == [("only", "connections", "a")]


ONE = "{name: a, api_key_env: A, app_key_env: B}"


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        (
            f"accounts: [{ONE}]\nconnections: [{{name: q, account: b}}]",
            "connections[0].account",
            "unknown account 'b' (one of a)",
        ),
        (
            "connections: [{name: q, account: eu}]",
            "connections[0].account",
            "unknown account 'eu'",
        ),
        (
            f"accounts: [{ONE}, {{name: b, api_key_env: A, app_key_env: B}}]\n"
            "connections: [{name: q}]",
            "connections[0].account",
            "required when several accounts",
        ),
        (f"accounts: [{ONE}, {ONE}]", "accounts[1].name", "duplicate name"),
        ("accounts: [{name: a, app_key_env: B}]", "accounts[0].api_key_file", "required"),
        (
            "accounts: [{name: a, api_key_env: A, api_key_file: /k, app_key_env: B}]",
            "accounts[0].api_key_file",
            "only one of",
        ),
        ("accounts: [{name: a, api_key_env: A, app_key_env: 9X}]", "accounts[0].app_key_env", ""),
        (f"datadog: {{site: datadoghq.eu}}\naccounts: [{ONE}]", "datadog.site", "per account"),
        ("accounts: [{name: a, site: example.com}]", "accounts[0].site", "datadoghq.eu"),
        ("accounts: [{name: a, colour: red}]", "accounts[0].colour", "unknown key"),
        ("accounts: [{name: 'a b', api_key_env: A, app_key_env: B}]", "accounts[0].name", ""),
    ],
)
def test_bad_accounts_name_their_key(text: str, path: str, fragment: str) -> None:
    found = problems(text)
    assert any(p == path and fragment in message for p, message in found), found


def test_account_keys_come_from_named_env_variables_and_files(tmp_path: Path) -> None:
    api_file, app_file = tmp_path / "api-key", tmp_path / "app-key"
    api_file.write_text("eu-api-key-1234567890\n")
    app_file.write_text("eu-app-key-1234567890\n")
    text = TWO_ACCOUNTS.replace("/etc/datadog/eu", str(tmp_path))
    eu, us = resolve_accounts(parse_config(text), "https://unused.example")
    redactor = Redactor()
    env = {"DD_US_API_KEY": "us-api-key-abcdefghij", "DD_US_APP_KEY": "us-app-key-abcdefghij"}
    env |= {"DD_API_KEY": "default-should-not-be-used", "DD_APP_KEY": "nope-nope-nope"}
    assert Credentials.for_account(eu, redactor, env).headers() == {
        "DD-API-KEY": "eu-api-key-1234567890",
        "DD-APPLICATION-KEY": "eu-app-key-1234567890",
    }
    assert Credentials.for_account(us, redactor, env).headers() == {
        "DD-API-KEY": "us-api-key-abcdefghij",
        "DD-APPLICATION-KEY": "us-app-key-abcdefghij",
    }
    # Both accounts' keys are scrubbed from logs.
    assert "eu-api-key" not in redactor.redact("key eu-api-key-1234567890")
    assert "us-app-key" not in redactor.redact("key us-app-key-abcdefghij")


def test_missing_account_keys_say_which_account_and_setting(tmp_path: Path) -> None:
    text = TWO_ACCOUNTS.replace("/etc/datadog/eu", str(tmp_path / "absent"))
    eu, us = resolve_accounts(parse_config(text), "https://unused.example")
    with pytest.raises(CredentialsError, match=r"accounts\[eu\]\.api_key_file .*absent"):
        Credentials.for_account(eu, Redactor(), {}).check()
    with pytest.raises(CredentialsError, match=r"DD_US_API_KEY is not set.*accounts\[us\]"):
        Credentials.for_account(us, Redactor(), {}).check()


def test_default_account_reads_the_dd_variables() -> None:
    (account,) = resolve_accounts(
        parse_config("connections: [{name: q}]"), "https://api.datadoghq.com"
    )
    env = {"DD_API_KEY": "plain-api-key-123456", "DD_APP_KEY": "plain-app-key-123456"}
    headers = Credentials.for_account(account, Redactor(), env).headers()
    assert headers["DD-API-KEY"] == "plain-api-key-123456"
