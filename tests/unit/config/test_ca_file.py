"""``datadog.ca_file`` is checked when the configuration is read: a file that is missing,
unreadable (a directory) or not a PEM bundle of certificates is a configuration error
naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from exporter.config.accounts import resolve_accounts
from exporter.config.errors import ConfigError
from exporter.config.schema import parse_config
from exporter.datadog.pool import load_trust


def problems(ca_file: Path, accounts: bool = False) -> list[tuple[str, str]]:
    text = f"datadog: {{ca_file: '{ca_file}'}}\n"
    if accounts:
        text += "accounts: [{name: eu, api_key_env: EU_API, app_key_env: EU_APP}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.problems


def test_a_missing_file_is_named_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "nope.pem"
    assert problems(path) == [
        ("datadog.ca_file", f"cannot read '{path}': No such file or directory")
    ]


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path) == [("datadog.ca_file", f"cannot read '{tmp_path}': Is a directory")]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a certificate\n",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        trustme.CA().private_key_pem.bytes(),  # a key, not a certificate
    ],
    ids=["empty", "text", "broken_pem", "key_only"],
)
def test_a_file_without_certificates_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(content)
    ((key, message),) = problems(path)
    assert key == "datadog.ca_file"
    assert message.startswith(f"'{path}' is not a PEM bundle of CA certificates (")


def test_ca_file_is_checked_with_accounts_too(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.pem", accounts=True)[0][0] == "datadog.ca_file"


def test_a_good_bundle_is_shared_by_every_account(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(trustme.CA().cert_pem.bytes() + trustme.CA().cert_pem.bytes())
    config = parse_config(
        f"datadog: {{ca_file: '{path}'}}\n"
        "accounts:\n"
        "  - {name: eu, site: datadoghq.eu, api_key_env: EU_API, app_key_env: EU_APP}\n"
        "  - {name: us, api_key_env: US_API, app_key_env: US_APP}\n"
        "connections: [{name: q, account: eu}]\n"
    )
    assert config.datadog.ca_file == path
    eu, us = resolve_accounts(config, "https://unused.example", load_trust(config))
    assert eu.ssl_context is not None and eu.ssl_context is us.ssl_context
    assert eu.ssl_context.check_hostname is True
    assert len(eu.ssl_context.get_ca_certs()) >= 2  # the system's CAs are kept as well


def test_a_bundle_that_vanishes_before_use_is_still_a_named_config_error(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(trustme.CA().cert_pem.bytes())
    config = parse_config(f"datadog: {{ca_file: '{path}'}}\nconnections: [{{name: q}}]\n")
    path.unlink()
    with pytest.raises(ConfigError) as caught:
        load_trust(config)
    assert caught.value.problems[0][0] == "datadog.ca_file"


def test_without_ca_file_the_default_trust_is_used() -> None:
    (account,) = resolve_accounts(
        parse_config("connections: [{name: q}]"), "https://api.datadoghq.com"
    )
    assert account.ssl_context is None
