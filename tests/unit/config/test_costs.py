"""A configuration file cannot cost much more than a real one: a file over the size limit is
refused before it is read, YAML is parsed by libyaml, and a bad value is quoted by a short
prefix, however long it is."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from exporter.config.errors import MAX_CONFIG_BYTES, ConfigError, UnreadableFileError
from exporter.config.jsonschema import config_json_schema
from exporter.config.schema import load_config, parse_config
from exporter.config.web import load_web_config
from exporter.durations import parse_duration

HUGE = 3_000_000  # characters of one value: under the file limit, far beyond any real value
LINE_BOUND = 300  # an error line about one bad value stays short


def comments(size: int) -> str:
    """``size`` bytes of YAML comment lines."""
    line = "#" * 79 + "\n"
    return line * (size // len(line)) + "#" * (size % len(line))


@pytest.mark.parametrize(
    ("query", "where", "says"),
    [
        ("interval: '{v}'", "connections[0].interval", "invalid duration '1111"),
        ("stale_after: '{v}s'", "connections[0].stale_after", "invalid duration '1111"),
        ("limit: '{v}'", "connections[0].limit", "(got '1111"),
        ("tags: ['{v},']", "connections[0].tags", "invalid tag '1111"),
        ("group_by: ['{v},']", "connections[0].group_by", "invalid field '1111"),
        ("account: '{v}'", "connections[0].account", "(got '1111"),
    ],
)
def test_a_huge_bad_value_is_quoted_by_a_short_prefix(query: str, where: str, says: str) -> None:
    value = "1" * HUGE
    text = "connections:\n  - {name: a, " + query.format(v=value) + "}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    line = str(caught.value)
    assert len(line) < LINE_BOUND, line[:LINE_BOUND]
    assert line.startswith(f"invalid configuration: {where}: ") and says in line, line
    assert re.search(r"'1{40}'\.\.\. \(3,000,00[01] characters\)", line), line


def test_a_huge_duration_is_refused_before_it_is_parsed() -> None:
    started = time.process_time()
    with pytest.raises(ValueError, match=r"^invalid duration '9{40}'\.\.\. \(") as caught:
        parse_duration("9" * 50_000_000 + "x")
    assert time.process_time() - started < 1.0  # the regex never sees it
    assert len(str(caught.value)) < LINE_BOUND


def test_a_number_too_long_for_python_is_a_configuration_error() -> None:
    """A 5,000-digit integer is a ValueError in int(); it is an invalid value, not a crash."""
    with pytest.raises(ConfigError, match=r"^invalid configuration: invalid YAML: .*4300 digits"):
        parse_config("connections: [{name: a, limit: " + "1" * 5000 + "}]\n")


def test_yaml_is_parsed_by_the_c_loader() -> None:
    """3.5 MB of comments before an unknown key: libyaml takes some 20 ms of CPU where the
    pure-Python loader takes seconds."""
    text = comments(3_500_000) + "\ncolour: red\n"
    started = time.process_time()
    with pytest.raises(ConfigError, match=r"colour: unknown key"):
        parse_config(text)
    assert time.process_time() - started < 0.5


def test_a_file_at_the_size_limit_is_read_and_one_above_is_refused_by_its_size(
    tmp_path: Path,
) -> None:
    at_limit = tmp_path / "at-limit.yml"
    at_limit.write_text("connections: [{name: a, group_by: [client_service]}]\n")
    with at_limit.open("a") as file:
        file.write(comments(MAX_CONFIG_BYTES - at_limit.stat().st_size))
    assert at_limit.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(at_limit).connections[0].name == "a"

    above = tmp_path / "above.yml"
    above.write_text(at_limit.read_text() + "\n")
    with pytest.raises(UnreadableFileError) as caught:
        load_config(above)
    assert str(caught.value) == (
        f"cannot read configuration file {above}: 4,194,305 bytes, above the limit of "
        "4,194,304 bytes (4 MiB) for a configuration file"
    )


def test_a_50_mb_file_is_refused_without_being_read(tmp_path: Path) -> None:
    """A sparse 50 MB file: refused by its size alone (reading it would take 50 MB)."""
    for name, load in (("exporter.yml", load_config), ("web.yml", load_web_config)):
        path = tmp_path / name
        with path.open("wb") as file:
            file.truncate(50 * 1024 * 1024)
        with pytest.raises(ConfigError, match=r": 52,428,800 bytes, above the limit of"):
            load(path)


def test_the_json_schema_refuses_the_durations_the_exporter_refuses_as_too_long() -> None:
    """The schema editors and Helm check a file with says what parse_duration says: a duration
    over MAX_DURATION_CHARS is refused, however well formed."""
    validator = Draft202012Validator(config_json_schema())
    for text, accepted in (("1s" * 500, True), ("1s" * 501, False)):
        document = {"connections": [{"name": "a", "interval": text}]}
        assert validator.is_valid(document) is accepted, len(text)
        if accepted:
            assert parse_config(yaml.safe_dump(document)).connections[0].interval == 500
        else:
            with pytest.raises(ConfigError, match="too long"):
                parse_config(yaml.safe_dump(document))
