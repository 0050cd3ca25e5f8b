"""Bad configurations are rejected with the key path; good ones come out typed and frozen."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from exporter.config.accounts import Environment, base_url
from exporter.config.errors import ConfigError
from exporter.config.schema import costly_interval_warnings, parse_config


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.problems


def test_full_example_parses_with_durations_in_seconds() -> None:
    config = parse_config(
        """
datadog: {site: datadoghq.eu, timeout: 30s}
connections:
  - name: svc_to_svc
    group_by: [client_service, server_service]
    tags: ["env:prod"]
    query: "env:prod AND NOT service:canary"
    limit: 1000
    interval: 1m30s
    window: 5m
    delay: 500ms
"""
    )
    (query,) = config.connections
    assert (query.interval, query.window, query.delay) == (90.0, 300.0, 0.5)
    assert config.datadog.timeout == 30.0
    assert query.effective_stale_after == 300.0


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("connections: [{name: a, limit: 8000}]", "connections[0].limit", "7500"),
        ("connections: [{name: a, limit: 0}]", "connections[0].limit", "1"),
        ("connections: [{name: a, interval: 5x}]", "connections[0].interval", "invalid duration"),
        ("connections: [{name: a, interval: 500ms}]", "connections[0].interval", "1"),
        ("connections: [{name: a, colour: red}]", "connections[0].colour", "unknown key"),
        ("connections: [{name: a}, {name: a}]", "connections[1].name", "duplicate name"),
        ("connections: [{group_by: [a]}]", "connections[0].name", "required"),
        ("datadog: {site: example.com}", "datadog.site", "datadoghq.eu"),
        ("datadog: {api_url: ftp://x}", "datadog.api_url", "http"),
        ("datadog: {timeout: -1s}", "datadog.timeout", "invalid duration"),
        ("connecshuns: []", "connecshuns", "unknown key"),
        (
            "connections: [{name: a, group_by: [a, b, c, d, e, f, g, h, i, j, k]}]",
            "connections[0].group_by",
            "10",
        ),
        ("connections: [{name: a, group_by: [a, a]}]", "connections[0].group_by", "repeat"),
        ("connections: [{name: a, tags: ['a,b']}]", "connections[0].tags", "comma"),
        ("connections: [{name: 'bad name'}]", "connections[0].name", "pattern"),
        ("dns: [{name: d, limit: 8000}]", "dns[0].limit", "7500"),
        ("dns: [{name: d, group_by: []}]", "dns[0].group_by", "at least 1"),
        ("dns: [{name: d}, {name: d}]", "dns[1].name", "duplicate name"),
        ("dns: [{name: d, window: soon}]", "dns[0].window", "invalid duration"),
        ("cases: [{name: c, group_by: [status], limit: 5000}]", "cases[0].limit", "1000"),
        ("cases: [{name: c, group_by: [status], limit: 0}]", "cases[0].limit", "1"),
        ("cases: [{name: c}]", "cases[0].group_by", "required"),
        ("cases: [{name: c, group_by: [status, status]}]", "cases[0].group_by", "repeat"),
        ("cases: [{name: c, group_by: [a], window: 5m}]", "cases[0].window", "unknown key"),
        ("cases: [{name: c, group_by: [a]}, {name: c, group_by: [b]}]", "cases[1].name", "dup"),
        ("audience: [{interval: 5m}]", "audience[0].entity", "required"),
        ("audience: [{entity: ../admin}]", "audience[0].entity", "pattern"),
        ("audience: [{entity: users}, {entity: users, name: u2}]", "audience[1].entity", "dup"),
        ("audience: [{entity: users}, {entity: accounts, name: users}]", "audience[1].name", "dup"),
        ("audience: [{entity: users, limit: 5}]", "audience[0].limit", "unknown key"),
    ],
)
def test_bad_value_names_its_key(text: str, path: str, fragment: str) -> None:
    found = problems(text)
    assert any(p == path and fragment in message for p, message in found), found


def test_bad_audience_entity_is_reported_once_not_again_as_a_name() -> None:
    assert [path for path, _ in problems("audience: [{entity: 'a/b'}]")] == ["audience[0].entity"]


def test_all_four_sections_parse_with_their_defaults() -> None:
    config = parse_config(
        """
connections: [{name: pairs}]
dns: [{name: by_query}]
cases:
  - {name: by_status, group_by: [status], query_filter: "project:NET", limit: 100, interval: 60s}
audience: [{entity: users, interval: 5m}, {entity: accounts, name: accts}]
"""
    )
    (dns,) = config.dns
    assert dns.group_by == ["network.dns_query"] and dns.window == 300.0
    (cases,) = config.cases
    assert (cases.query_filter, cases.limit, cases.interval) == ("project:NET", 100, 60.0)
    assert parse_config("cases: [{name: c, group_by: [s]}]").cases[0].query_filter == ""
    users, accounts = config.audience
    assert (users.name, users.entity, users.interval) == ("users", "users", 300.0)
    assert (accounts.name, accounts.entity) == ("accts", "accounts")
    assert [(c, q.name) for c, q in config.all_queries()] == [
        ("connections", "pairs"),
        ("dns", "by_query"),
        ("cases", "by_status"),
        ("audience", "users"),
        ("audience", "accts"),
    ]


def test_same_name_in_different_sections_is_allowed() -> None:
    config = parse_config(
        "connections: [{name: a}]\ndns: [{name: a}]\ncases: [{name: a, group_by: [s]}]"
    )
    assert len(config.all_queries()) == 3


def test_invalid_yaml_names_the_line() -> None:
    ((where, message),) = problems("connections:\n  - name: a\n    limit: [1\n")
    assert where.startswith("line ") and "invalid YAML" in message


def test_top_level_must_be_a_mapping() -> None:
    assert problems("- a\n- b\n")[0][1].startswith("the top level")


def test_every_problem_is_reported_at_once() -> None:
    found = problems("connections: [{name: a, limit: 9000, window: zz}]")
    assert {p for p, _ in found} == {"connections[0].limit", "connections[0].window"}


def test_config_is_frozen() -> None:
    config = parse_config("connections: [{name: a}]")
    with pytest.raises(ValidationError):
        config.connections[0].limit = 5  # type: ignore[misc]


def test_fast_interval_is_accepted_with_a_warning() -> None:
    config = parse_config("connections: [{name: fast, interval: 1s}, {name: slow}]")
    (warning,) = costly_interval_warnings(config)
    assert "'fast'" in warning and "1s" in warning


def test_base_url_precedence_env_then_file_then_site() -> None:
    config = parse_config("datadog: {site: datadoghq.eu}\nconnections: [{name: q}]").datadog
    assert base_url(config, Environment()) == "https://api.datadoghq.eu"
    assert base_url(config, Environment(api_url="http://127.0.0.1:1/")) == "http://127.0.0.1:1"
    plain = parse_config("connections: [{name: q}]").datadog
    assert base_url(plain, Environment(site="us5.datadoghq.com")) == "https://api.us5.datadoghq.com"
    with pytest.raises(ConfigError, match="DD_SITE"):
        base_url(plain, Environment(site="datadog.example"))
