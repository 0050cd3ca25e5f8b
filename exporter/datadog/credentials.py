"""The Datadog API and application keys: from the environment or from files.

A key file (``DD_API_KEY_FILE``, a mounted Kubernetes Secret) is read again for every
request, so a rotated key is used from the next request on, without a restart, however it
was rotated: a Secret's symlink swap, a copy that keeps the old size and modification time
(Datadog keys all have one length), two writes within one timestamp tick. Size and mtime
alone miss the last two; a key file is a few dozen bytes, so reading it costs microseconds.
Each configured account names its own files or environment variables.
Keys live in :class:`pydantic.SecretStr` objects, whose repr and str never show the value;
every key read is also given to the :class:`Redactor`, which removes it from any log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from ..config.accounts import Account
from ..logs import Redactor


class CredentialsError(Exception):
    """A key is missing or its file cannot be read (the message never holds a key)."""


@dataclass
class KeySource:
    """One key, given directly (env) or as a file path that may change under us."""

    label: str  # e.g. "DD_API_KEY" — used in error messages, never the value
    value: SecretStr | None = None
    path: Path | None = None
    # What error messages call the file and how to fix a missing key (defaults: DD_* style).
    file_label: str | None = None
    missing_hint: str | None = None

    def current(self, redactor: Redactor) -> SecretStr:
        if self.path is not None:
            self._reload_if_changed(redactor)
            if self.value is None or not self.value.get_secret_value():
                # Named like a missing file: "not set" would send the user to the variable.
                raise CredentialsError(f"{self._file_label} {self.path} is empty")
        if self.value is None or not self.value.get_secret_value():
            hint = self.missing_hint or f"export {self.label} or {self.label}_FILE"
            raise CredentialsError(f"{self.label} is not set: {hint}")
        return self.value

    @property
    def _file_label(self) -> str:
        return self.file_label or f"{self.label}_FILE"

    def _reload_if_changed(self, redactor: Redactor) -> None:
        assert self.path is not None
        what = self._file_label
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise CredentialsError(f"cannot read {what} {self.path}: {reason}") from None
        if self.value is not None and text == self.value.get_secret_value():
            return  # unchanged: the content decides, whatever its size, mtime or inode
        redactor.add(text)
        self.value = SecretStr(text)


class Credentials:
    """The pair of keys an account authenticates with."""

    def __init__(self, api_key: KeySource, app_key: KeySource, redactor: Redactor):
        self.api_key = api_key
        self.app_key = app_key
        self._redactor = redactor
        for source in (api_key, app_key):
            if source.value is not None:
                redactor.add(source.value.get_secret_value())

    @classmethod
    def from_environment(
        cls, redactor: Redactor, environ: Mapping[str, str], prefix: str = "DD_"
    ) -> Credentials:
        """``{prefix}API_KEY`` and ``{prefix}APP_KEY`` (or their ``_FILE`` variables) of
        ``environ``, the command line's snapshot of the environment."""
        return cls(
            _source(environ, f"{prefix}API_KEY"), _source(environ, f"{prefix}APP_KEY"), redactor
        )

    @classmethod
    def for_account(
        cls, account: Account, redactor: Redactor, environ: Mapping[str, str]
    ) -> Credentials:
        """The keys an account's configuration points at (the DD_* ones for the default)."""
        sources = [
            (account.api_key_file, account.api_key_env, "api_key"),
            (account.app_key_file, account.app_key_env, "app_key"),
        ]
        if all(path is None and name is None for path, name, _ in sources):
            return cls.from_environment(redactor, environ)
        api_key, app_key = (
            _account_source(account.name, key, path, name, environ) for path, name, key in sources
        )
        return cls(api_key, app_key, redactor)

    def headers(self) -> dict[str, str]:
        """Auth headers for one request; re-reads key files that changed."""
        return {
            "DD-API-KEY": self.api_key.current(self._redactor).get_secret_value(),
            "DD-APPLICATION-KEY": self.app_key.current(self._redactor).get_secret_value(),
        }

    def check(self) -> None:
        """Raise CredentialsError now if a key is missing, rather than at the first poll."""
        self.headers()

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.api_key.label}, app_key={self.app_key.label})"


def _source(env: Mapping[str, str], name: str) -> KeySource:
    file_name = env.get(f"{name}_FILE")
    if file_name:
        return KeySource(name, path=Path(file_name))
    value = env.get(name)
    return KeySource(name, value=SecretStr(value) if value else None)


def _account_source(
    account: str, key: str, path: Path | None, env_name: str | None, env: Mapping[str, str]
) -> KeySource:
    where = f"accounts[{account}]"
    if path is not None:
        return KeySource(f"{where}.{key}", path=path, file_label=f"{where}.{key}_file")
    assert env_name is not None  # settings require one of the two
    value = env.get(env_name)
    return KeySource(
        env_name,
        value=SecretStr(value) if value else None,
        missing_hint=f"export it ({where}.{key}_env names it)",
    )
