"""The configuration's JSON Schema: it says what the models say (durations as text, unknown
keys refused), every configuration the project ships passes ``check-jsonschema`` with it, a
wrong one fails naming the key, and ``--config.schema`` prints the shipped copy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from exporter import cli, docs
from exporter.config.jsonschema import config_json_schema
from exporter.config.schema import FILE_CONTEXT, Config

REPO = Path(__file__).resolve().parents[3]
SCHEMA = REPO / "docs" / "config.schema.json"
# The example configurations editors open: each names the schema on its first line.
EXAMPLES = (REPO / "exporter" / "demo.yml", REPO / "deploy" / "kubernetes" / "base" / "config.yml")
SCHEMA_LINE = re.compile(r"# yaml-language-server: \$schema=(\S+)")
CONFIG_KEYS = frozenset(Config.model_fields)


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def looks_like_config(value: object) -> bool:
    """A mapping with a key of the configuration's: in a page, an example of one (a typo in
    another key must not hide it)."""
    return isinstance(value, dict) and bool(CONFIG_KEYS & set(value))


def is_config(value: object) -> bool:
    """A mapping of configuration keys only: inside a manifest or Helm values, the file the
    exporter reads (a chart's own `datadog:` settings beside other keys are not one)."""
    return isinstance(value, dict) and bool(value) and set(value) <= CONFIG_KEYS


def configs_in(value: object) -> Iterator[dict[str, Any]]:
    """Every configuration inside a YAML document: itself, a nested value (Helm values), or
    the text of a ConfigMap's data."""
    if is_config(value):
        assert isinstance(value, dict)
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from configs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from configs_in(item)
    elif isinstance(value, str) and "\n" in value:
        try:
            yield from configs_in(yaml.safe_load(value))
        except yaml.YAMLError:
            return


def in_helm_chart(path: Path) -> bool:
    return any((parent / "Chart.yaml").exists() for parent in path.parents)


def shipped_configs() -> dict[str, dict[str, Any]]:
    """Every configuration under deploy/ and the package, by where it was found."""
    found: dict[str, dict[str, Any]] = {}
    paths = [*EXAMPLES, *(REPO / "deploy").rglob("*.y*ml")]
    for path in sorted(set(paths)):
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue  # a template (Helm's {{ }}), not YAML until rendered
        for index, document in enumerate(documents):
            # A chart's values: the exporter's file is their `config:` (the chart's own
            # `datadog:` settings share a name with a configuration key).
            chart_config = document.get("config") if isinstance(document, dict) else None
            searched = chart_config if in_helm_chart(path) else document
            for number, config in enumerate(configs_in(searched)):
                found[f"{path.relative_to(REPO)}#{index}.{number}"] = config
    return found


CHART_VALUES = REPO / "deploy" / "helm" / "datadog-cnm-exporter" / "values.yaml"


def is_chart_values(value: object) -> bool:
    """A block of the Helm chart's values: only keys the chart's values.yaml has, one of them
    not a configuration key (the chart's `datadog:` shares its name with the file's)."""
    chart_keys = set(yaml.safe_load(CHART_VALUES.read_text()))
    return isinstance(value, dict) and set(value) <= chart_keys and not set(value) <= CONFIG_KEYS


def documented_configs() -> dict[str, dict[str, Any]]:
    """Every ```yaml block of the README and docs/ that is an exporter configuration."""
    found: dict[str, dict[str, Any]] = {}
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        blocks = re.findall(r"```ya?ml\n(.*?)```", page.read_text(), re.S)
        for index, block in enumerate(blocks):
            try:
                document = yaml.safe_load(block)
            except yaml.YAMLError:
                continue  # a fragment with placeholders, not a file
            if is_chart_values(document):
                assert isinstance(document, dict)
                document = document.get("config")  # the exporter's file inside the values
            if looks_like_config(document):
                found[f"{page.relative_to(REPO)} yaml block {index + 1}"] = document
    return found


def validate_all(configs: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    files = []
    for index, (where, config) in enumerate(configs.items()):
        path = tmp_path / f"config-{index}.yml"
        path.write_text(f"# {where}\n" + yaml.safe_dump(config))
        files.append(path)
    proc = check_jsonschema(*files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_shipped_configuration_passes_check_jsonschema(tmp_path: Path) -> None:
    configs = shipped_configs()
    assert {where.split("#")[0] for where in configs} >= {
        str(path.relative_to(REPO)) for path in EXAMPLES
    }
    proc = check_jsonschema(*EXAMPLES)  # the files themselves, comments and all
    assert proc.returncode == 0, proc.stdout + proc.stderr
    validate_all(configs, tmp_path)


def test_configurations_are_found_in_configmaps_and_helm_values() -> None:
    """The search that feeds the test above: a ConfigMap's data text and a chart's `config:`
    are found; a chart's own `datadog:` settings next to other keys are not a configuration."""
    config_map = {"kind": "ConfigMap", "data": {"config.yml": "dns:\n  - name: lookups\n"}}
    values = {
        "datadog": {"existingSecret": "keys", "site": ""},
        "config": {"datadog": {"timeout": "30s"}, "connections": [{"name": "pairs"}]},
        "shards": 3,
    }
    assert list(configs_in(config_map)) == [{"dns": [{"name": "lookups"}]}]
    assert list(configs_in(values)) == [values["config"]]


def test_every_configuration_in_the_docs_passes_check_jsonschema(tmp_path: Path) -> None:
    configs = documented_configs()
    assert configs, "no configuration found in README.md or docs/"
    validate_all(configs, tmp_path)


def test_a_wrong_configuration_fails_naming_the_key(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.yml"
    wrong.write_text(
        "datadog:\n  timeout: 10s\n"
        "connections:\n"
        "  - name: pairs\n    intervall: 1m\n"  # a typo: unknown keys are refused
        "  - name: totals\n    window: 5 minutes\n"
        "  - name: many\n    limit: 9000\n"
    )
    proc = check_jsonschema(wrong)
    assert proc.returncode == 1
    assert "$.connections[0]: Additional properties are not allowed ('intervall'" in proc.stdout
    assert "$.connections[1].window: '5 minutes'" in proc.stdout
    assert "$.connections[2].limit: 9000 is greater than the maximum of 7500" in proc.stdout


def test_example_configurations_name_the_checked_in_schema_on_their_first_line() -> None:
    for example in EXAMPLES:
        match = SCHEMA_LINE.fullmatch(example.read_text().splitlines()[0])
        assert match, f"{example}: the first line must be '# yaml-language-server: $schema=...'"
        target = (example.parent / match.group(1)).resolve()
        assert target in {REPO / path for path in docs.SCHEMA_PATHS}, target


def accepts(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    return Draft202012Validator(schema).is_valid(document)


def model_accepts(document: dict[str, Any]) -> bool:
    try:
        # As parse_config reads a file: durations there need a unit.
        Config.model_validate(document, context=FILE_CONTEXT)
    except ValidationError:
        return False
    return True


DURATION_KEYS = [
    ("datadog", "timeout"),
    ("connections", "interval"),
    ("connections", "window"),
    ("connections", "delay"),
    ("dns", "stale_after"),
    ("audience", "interval"),
]
# Within every key's bounds: a bound on text (interval at least 1s) is beyond a JSON Schema,
# so the exporter alone checks it.
FORMS: list[object] = [
    "30s",
    "1h30m",
    "1.5h",
    " 5m ",
    "1500ms",
    90,
    90.5,
    "90",
    "5x",
    True,
    "",
    None,
]


def with_value(section: str, key: str, value: object) -> dict[str, Any]:
    if section == "datadog":
        return {"datadog": {key: value}, "dns": [{"name": "q"}]}
    item: dict[str, Any] = {"name": "q", key: value}
    if section == "audience":
        item["entity"] = "users"
    return {section: [item]}


@pytest.mark.parametrize(("section", "key"), DURATION_KEYS)
def test_a_duration_key_takes_in_the_schema_the_forms_the_model_takes(
    section: str, key: str
) -> None:
    """Text durations are accepted by both; a bare number by both for as long as the model
    takes one (seconds), and by neither once it does not."""
    schema = config_json_schema()
    for value in FORMS:
        document = with_value(section, key, value)
        assert accepts(schema, document) == model_accepts(document), (section, key, value)
    assert accepts(schema, with_value(section, key, "30s"))


def limits(endpoint: str) -> dict[str, Any]:
    return {
        "datadog": {"rate_limits": {endpoint: {"limit": 5, "period": "1h"}}},
        "dns": [{"name": "q"}],
    }


def account(**keys: str) -> dict[str, Any]:
    return {"accounts": [{"name": "a", **keys}], "dns": [{"name": "q"}]}


CASES: list[tuple[str, dict[str, Any]]] = [
    ("an unknown top-level key", {"connection": []}),
    ("an unknown query key", {"dns": [{"name": "q", "intervall": "1m"}]}),
    ("an unknown datadog key", {"datadog": {"sitee": "datadoghq.eu"}}),
    ("an audience query without a name", {"audience": [{"entity": "users"}]}),
    ("an entity that escapes the path", {"audience": [{"entity": "../x"}]}),
    ("a cases query without group_by", {"cases": [{"name": "q"}]}),
    ("a site Datadog does not have", {"datadog": {"site": "datadoghq.org"}}),
    ("an api_url without a scheme", {"datadog": {"api_url": "api.datadoghq.com"}}),
    ("rate limits of a known endpoint", limits("dns")),
    ("rate limits of an unknown endpoint", limits("logs")),
    (
        "an account with both key sources",
        account(api_key_env="A", api_key_file="/k", app_key_env="B"),
    ),
    ("an account without an app key", account(api_key_env="A")),
    ("an account with its keys", account(api_key_env="A", app_key_file="/k")),
    ("eleven group_by fields", {"connections": [{"name": "q", "group_by": list("abcdefghijk")}]}),
    ("a limit past Datadog's", {"connections": [{"name": "q", "limit": 7501}]}),
    ("a response size below 1 KiB", {"datadog": {"max_response_size": 1000}}),
    ("an empty file", {}),
    ("no query, only settings", {"datadog": {"timeout": "5s"}}),
    ("empty query sections", {"connections": [], "dns": []}),
    ("one query", {"cases": [{"name": "q", "group_by": ["status"]}]}),
]


@pytest.mark.parametrize(("case", "document"), CASES, ids=[case for case, _ in CASES])
def test_the_schema_and_the_model_agree(case: str, document: dict[str, Any]) -> None:
    assert accepts(config_json_schema(), document) == model_accepts(document), case


def test_every_mapping_of_the_schema_refuses_unknown_keys() -> None:
    schema = config_json_schema()
    objects = [schema, *schema["$defs"].values()]
    assert len(objects) >= 8
    for node in objects:
        assert node["additionalProperties"] is False, node.get("title")


def test_config_schema_flag_prints_the_shipped_schema_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--config.schema"])
    assert exit_info.value.code == 0
    assert json.loads(capsys.readouterr().out) == config_json_schema()
