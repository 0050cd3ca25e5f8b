"""The configuration file's JSON Schema, generated from the models in :mod:`.schema`.

Editors (through yaml-language-server) and ``check-jsonschema`` check a file against it before
the exporter reads it, so it must say what the models say: durations accept their text
(``30s``), unknown keys are refused, bounds and defaults are the models'. What a JSON Schema
cannot state (unique names, which account a query may name) stays the exporter's to check.

Pure: ``python -m exporter.docs`` writes the result out (the package ships that copy, which
``--config.schema`` prints); nothing at run time imports this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from ..durations import DURATION_PATTERN, format_duration
from .schema import Config, query_endpoints

DIALECT = "https://json-schema.org/draft/2020-12/schema"
TITLE = "datadog-cnm-exporter configuration"
DESCRIPTION = (
    "The YAML file given to datadog-cnm-exporter --config.file: where the Datadog API lives "
    "and which queries to poll. Every section is optional; unknown keys are errors."
)
# pydantic states a bound on a duration (a union of text and number, or text alone) under its
# own names, which JSON Schema does not know. Renamed in place: a JSON Schema bound constrains
# numbers (seconds) and leaves text alone, whose bound only the exporter can check; the
# reference reads it from there either way.
_BOUNDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the configuration file."""
    schema = Config.model_json_schema(mode="validation")
    definitions: dict[str, Any] = schema.get("$defs", {})
    for model in _models(Config):
        node = schema if model is Config else definitions[model.__name__]
        _fill_factory_defaults(model, node)
    for node in _nodes(schema):
        _rename_bounds(node)
        for value in node.get("properties", {}).values():
            value.pop("title", None)  # "Max Response Size": the key, said again
            if is_duration(value) and isinstance(value.get("default"), int | float):
                value["default"] = format_duration(value["default"])
        if isinstance(node.get("description"), str):
            node["description"] = _plain(node["description"])
    rate_limits = definitions["DatadogSettings"]["properties"]["rate_limits"]
    rate_limits["propertyNames"] = {"enum": list(query_endpoints(Config))}
    schema.pop("title", None)
    return {"$schema": DIALECT, "title": TITLE, **schema, "description": DESCRIPTION}


def is_duration(node: dict[str, Any]) -> bool:
    """Whether a property's schema is a duration's: it takes text of the duration pattern."""
    return any(
        branch.get("type") == "string" and branch.get("pattern") == DURATION_PATTERN
        for branch in _branches(node)
    )


def _branches(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The node and, recursively, the alternatives of its ``anyOf``."""
    yield node
    for branch in node.get("anyOf", []):
        yield from _branches(branch)


def _models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """The model and every model its fields hold (directly, in lists, in dict values)."""
    seen: set[type[BaseModel]] = set()
    stack = [model]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        yield current
        for field in current.model_fields.values():
            stack.extend(_models_in(field.annotation))


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in getattr(annotation, "__args__", ()):
        yield from _models_in(argument)


def _fill_factory_defaults(model: type[BaseModel], node: dict[str, Any]) -> None:
    """pydantic leaves out the defaults made by a factory; lists and mappings of plain values
    are worth showing (``group_by: [network.dns_query]``), a whole section is not."""
    for name, field in model.model_fields.items():
        if field.default_factory is None:
            continue
        value = field.get_default(call_default_factory=True)
        if isinstance(value, list | dict) and not any(
            isinstance(item, BaseModel) for item in value
        ):
            node["properties"][name]["default"] = value


def _rename_bounds(node: dict[str, Any]) -> None:
    for key in [key for key in node if key in _BOUNDS]:
        node[_BOUNDS[key]] = node.pop(key)


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object inside ``node``, ``node`` included, parents before children."""
    if isinstance(node, dict):
        yield node
        for value in list(node.values()):
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def _plain(text: str) -> str:
    """A docstring as an editor shows it: ``code`` in single backquotes, paragraphs kept."""
    paragraphs = [" ".join(part.split()) for part in text.split("\n\n")]
    return re.sub(r"``([^`]+)``", r"`\1`", "\n\n".join(paragraphs))
