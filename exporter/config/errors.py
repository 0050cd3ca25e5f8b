"""Configuration errors: every failure becomes one :class:`ConfigError` naming its key path.

The one translator of pydantic's ``ValidationError`` lives here (:func:`problems_from`), so no
other module reads pydantic's error locations. So does the reading of a configuration file
(:func:`read_text_file`, :func:`load_yaml`), bounded so that no file costs much more than a
real one: a file over MAX_CONFIG_BYTES is refused before it is read, YAML is parsed by
libyaml where it is installed, and a bad value is quoted by a short prefix only.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from ..quoting import quoted

# A real configuration is a few KiB (a thousand queries: about 100 KiB). Above this size a
# file is refused before it is read or parsed, at start-up and on reload: parsing 50 MB of
# YAML took seconds of CPU and hundreds of MiB, more than the sidecar's memory limit.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# The C loader (libyaml) is some 40 times faster than the pure-Python one and safe alike.
YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one ``(key_path, message)`` per fault."""

    def __init__(self, problems: Iterable[tuple[str, str]], source: str = "configuration"):
        self.problems = list(problems)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        if len(self.problems) == 1:  # one line, as start-up errors and log lines want
            path, message = self.problems[0]
            return f"invalid {self.source}: {path + ': ' if path else ''}{message}"
        lines = [f"invalid {self.source}:"]
        lines += [
            f"  {path}: {message}" if path else f"  {message}" for path, message in self.problems
        ]
        return "\n".join(lines)


class UnreadableFileError(ConfigError):
    """A configuration file that cannot be read at all (missing, a directory, no permission,
    not UTF-8): one line naming the file and the cause."""

    def __init__(self, what: str, path: Path, reason: str):
        self.line = f"cannot read {what} {path}: {reason}"
        super().__init__([("", self.line)], str(path))

    def render(self) -> str:
        return self.line


class KeyedError(ValueError):
    """A model-level error that knows which key it belongs to."""

    def __init__(self, loc: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


def format_loc(loc: Iterable[str | int]) -> str:
    """``("connections", 0, "limit")`` -> ``connections[0].limit``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def problems_from(
    error: ValidationError,
    data: object,
    model: type[BaseModel] | None = None,
    *,
    echo_values: bool = True,
) -> list[tuple[str, str]]:
    """One ``(key_path, message)`` per error of validating ``data`` (the parsed YAML) against
    ``model``; given the model, an unknown key names the closest known one.

    A message that does not show the rejected value gets ``(got …)``, unless ``echo_values``
    is False: a file where a value may be a secret (a plaintext password written where its
    bcrypt hash belongs) must not have it printed at start-up."""
    problems = []
    for item in error.errors(include_url=False):
        ctx_error = (item.get("ctx") or {}).get("error")
        if isinstance(ctx_error, KeyedError):
            problems.append((format_loc(ctx_error.loc), ctx_error.message))
            continue
        loc = user_loc(item["loc"], data, missing=item["type"] == "missing")
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
            if model is not None and loc and isinstance(loc[-1], str):
                message += did_you_mean(loc[-1], known_keys(model, loc[:-1]))
        elif (
            echo_values
            and item["type"] != "missing"
            and not isinstance(item["input"], dict | list)
            and not _shows(message, item["input"])
        ):
            message = f"{message} (got {quoted(item['input'])})"
        problems.append((format_loc(loc), message))
    return problems


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`` (did you mean `group_by`?)`` for the known key closest to ``key``, or nothing."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def known_keys(model: type[BaseModel], loc: Iterable[str | int]) -> list[str]:
    """The keys allowed at ``loc`` (a user path such as ``connections, 0``) of ``model``;
    none where the path does not lead to a model (a mapping of free keys, a scalar)."""
    here: Any = model
    for part in loc:
        here = _unwrap(here)
        if isinstance(part, int):
            if get_origin(here) is not list:
                return []
            here = get_args(here)[0]
        elif isinstance(here, type) and issubclass(here, BaseModel):
            field = here.model_fields.get(part)
            if field is None:
                return []
            here = field.annotation
        elif get_origin(here) is dict:
            here = get_args(here)[1]
        else:
            return []
    here = _unwrap(here)
    if isinstance(here, type) and issubclass(here, BaseModel):
        return list(here.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X`` (a union of several types: as is)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _shows(message: str, value: object) -> bool:
    """Whether ``message`` already quotes ``value`` (whole, or by its short prefix)."""
    if quoted(value) in message:
        return True
    short = not isinstance(value, str) or len(value) <= len(message)
    return short and repr(value) in message


def user_loc(loc: Iterable[str | int], data: object, *, missing: bool = False) -> list[str | int]:
    """The parts of a pydantic error location that are keys and indexes the user wrote.

    pydantic adds parts of its own (the union member it tried, ``[key]`` for a mapping's
    key); rather than knowing how it spells them, the location is followed through ``data``
    and a part that leads nowhere is left out. The one exception is the last part of a
    ``missing`` error: the key the user left out.
    """
    parts = list(loc)
    kept: list[str | int] = []
    here: object = data
    for index, part in enumerate(parts):
        if _leads_somewhere(here, part):
            here = here[part]  # type: ignore[index]
        elif not (missing and index == len(parts) - 1):
            continue
        kept.append(part)
    return kept


def _leads_somewhere(here: object, part: str | int) -> bool:
    if isinstance(here, dict):
        return part in here
    return isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here)


def read_text_file(
    path: Path, what: str, error: type[UnreadableFileError] = UnreadableFileError
) -> str:
    """The UTF-8 text of ``path``; ``error`` naming ``what`` and the cause if unreadable or
    over MAX_CONFIG_BYTES (refused by its size before it is read)."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            # Bounded even where the size says nothing (a pipe says 0).
            data = file.read(MAX_CONFIG_BYTES + 1) if size <= MAX_CONFIG_BYTES else b""
    except OSError as exc:
        raise error(what, path, exc.strerror or str(exc)) from None
    if size > MAX_CONFIG_BYTES or len(data) > MAX_CONFIG_BYTES:
        told = f"{size:,} bytes" if size > MAX_CONFIG_BYTES else f"over {MAX_CONFIG_BYTES:,} bytes"
        raise error(
            what,
            path,
            f"{told}, above the limit of {MAX_CONFIG_BYTES:,} bytes (4 MiB) for a "
            "configuration file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(what, path, "not UTF-8 text") from None


def load_yaml(text: str) -> object:
    """The YAML document in ``text`` (safe types only); yaml.YAMLError if it is not YAML.

    A number too long for Python to convert (over 4,300 digits) is a YAMLError too, not the
    ValueError that would escape as an internal error."""
    try:
        return yaml.load(text, Loader=YAML_LOADER)  # a safe loader, C or Python
    except ValueError as exc:
        raise yaml.YAMLError(f"a value YAML cannot convert: {str(exc)[:80]}") from None
