"""Key files: an empty one is named for what it is, not reported as an unset variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.config.accounts import resolve_accounts
from exporter.config.schema import parse_config
from exporter.datadog.credentials import Credentials, CredentialsError
from exporter.logs import Redactor

API_KEY = "api-key-0123456789abcdef"
APP_KEY = "app-key-0123456789abcdef"


@pytest.mark.parametrize("content", ["", "\n", "  \n\t\n"])
@pytest.mark.parametrize("variable", ["DD_API_KEY_FILE", "DD_APP_KEY_FILE"])
def test_an_empty_dd_key_file_is_named(tmp_path: Path, variable: str, content: str) -> None:
    empty = tmp_path / "key"
    empty.write_text(content)
    env = {"DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY, variable: str(empty)}
    credentials = Credentials.from_environment(Redactor(), env)
    with pytest.raises(CredentialsError) as caught:
        credentials.check()
    assert str(caught.value) == f"{variable} {empty} is empty"


def test_a_key_file_emptied_while_running_is_named_then_recovers(tmp_path: Path) -> None:
    key = tmp_path / "api-key"
    key.write_text(API_KEY)
    env = {"DD_API_KEY_FILE": str(key), "DD_APP_KEY": APP_KEY}
    credentials = Credentials.from_environment(Redactor(), env)
    assert credentials.headers()["DD-API-KEY"] == API_KEY
    key.write_text("")
    with pytest.raises(CredentialsError, match=r"^DD_API_KEY_FILE .* is empty$"):
        credentials.headers()
    key.write_text(API_KEY + "-rotated")
    assert credentials.headers()["DD-API-KEY"] == API_KEY + "-rotated"


@pytest.mark.parametrize("key", ["api_key", "app_key"])
def test_an_empty_account_key_file_is_named(tmp_path: Path, key: str) -> None:
    for name in ("api-key", "app-key"):
        (tmp_path / name).write_text(f"eu-{name}-0123456789")
    (tmp_path / key.replace("_", "-")).write_text("")
    text = f"""
accounts:
  - name: eu
    site: datadoghq.eu
    api_key_file: {tmp_path / "api-key"}
    app_key_file: {tmp_path / "app-key"}
connections: [{{name: svc, account: eu}}]
"""
    (account,) = resolve_accounts(parse_config(text), "https://unused.example")
    with pytest.raises(CredentialsError) as caught:
        Credentials.for_account(account, Redactor(), {}).check()
    path = tmp_path / key.replace("_", "-")
    assert str(caught.value) == f"accounts[eu].{key}_file {path} is empty"


def test_a_key_never_shows_itself_and_the_redactor_knows_every_key(tmp_path: Path) -> None:
    """Keys from a variable and from a file: no repr, str or format of the objects that hold
    them shows them, and any text that does hold them is redacted."""
    key_file = tmp_path / "app-key"
    key_file.write_text(APP_KEY + "\n")
    redactor = Redactor()
    credentials = Credentials.from_environment(
        redactor, {"DD_API_KEY": API_KEY, "DD_APP_KEY_FILE": str(key_file)}
    )
    assert credentials.headers() == {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY}
    holders = [
        credentials,
        credentials.api_key,
        credentials.app_key,
        credentials.api_key.current(redactor),
        credentials.app_key.current(redactor),
    ]
    shown = [text for holder in holders for text in (repr(holder), str(holder), f"{holder}")]
    shown.append("%s %r" % (holders[3], holders[4]))  # noqa: UP031 - the old way, too
    assert not [text for text in shown if API_KEY in text or APP_KEY in text]
    echoed = f"403 Forbidden: DD-API-KEY={API_KEY} DD-APPLICATION-KEY={APP_KEY}"
    assert (
        redactor.redact(echoed)
        == "403 Forbidden: DD-API-KEY=[REDACTED] DD-APPLICATION-KEY=[REDACTED]"
    )


def rotate_keeping_size_and_mtime(path: Path, new_key: str, *, new_inode: bool) -> None:
    """Replace a key file's content with a key of the same length and set its modification
    time back to the old one: written in place, or as a new file renamed over it."""
    before = path.stat()
    assert len(new_key.encode()) == before.st_size
    if new_inode:
        fresh = path.with_name(path.name + ".new")
        fresh.write_text(new_key)
        os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(fresh, path)
    else:
        path.write_text(new_key)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert (after.st_ino != before.st_ino) == new_inode


@pytest.mark.parametrize("new_inode", [False, True], ids=["in-place", "renamed-over"])
def test_a_rotated_key_of_the_same_size_and_mtime_is_used_at_the_next_request(
    tmp_path: Path, new_inode: bool
) -> None:
    """Datadog keys all have one length: a rotation that keeps the modification time (cp -p,
    a config tool) is still seen, and the new key is redacted like the old."""
    key = tmp_path / "api-key"
    key.write_text(API_KEY)
    redactor = Redactor()
    credentials = Credentials.from_environment(
        redactor, {"DD_API_KEY_FILE": str(key), "DD_APP_KEY": APP_KEY}
    )
    assert credentials.headers()["DD-API-KEY"] == API_KEY
    rotated = API_KEY.replace("0123", "9876")
    rotate_keeping_size_and_mtime(key, rotated, new_inode=new_inode)
    assert credentials.headers()["DD-API-KEY"] == rotated
    assert rotated not in redactor.redact(f"key={rotated}")
