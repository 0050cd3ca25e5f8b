"""The configuration reads like a Prometheus one: durations need a unit and bounds name it, a
file with nothing to poll is refused, an unknown key names the closest known one, and a
window shorter than its interval is a warning."""

from __future__ import annotations

import pytest

from exporter.config.errors import ConfigError
from exporter.config.report import summary
from exporter.config.schema import ConnectionsQuery, parse_config, short_window_warnings


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "path", "shown"),
    [
        ("connections: [{name: a, interval: 60}]", "connections[0].interval", "write 60s"),
        ("connections: [{name: a, window: 300}]", "connections[0].window", "write 300s"),
        ("connections: [{name: a, delay: 0}]", "connections[0].delay", "write 0s"),
        ("connections: [{name: a, stale_after: 1.5}]", "connections[0].stale_after", "1.5s"),
        ("datadog: {timeout: 10}\ndns: [{name: d}]", "datadog.timeout", "write 10s"),
        (
            "datadog: {rate_limits: {cases: {limit: 5, period: 60}}}\n"
            "cases: [{name: c, group_by: [status]}]",
            "datadog.rate_limits.cases.period",
            "write 60s",
        ),
    ],
)
def test_a_duration_without_a_unit_is_an_error_showing_it_with_one(
    text: str, path: str, shown: str
) -> None:
    ((where, message),) = problems(text)
    assert where == path
    assert shown in message and "needs a unit" in message


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("connections: [{name: a, interval: 500ms}]", "must be >= 1s (got '500ms')"),
        ("connections: [{name: a, window: 0s}]", "must be > 0s (got '0s')"),
        ("datadog: {timeout: 0s}\nconnections: [{name: a}]", "must be > 0s (got '0s')"),
    ],
)
def test_a_bound_names_its_unit(text: str, bound: str) -> None:
    ((_, message),) = problems(text)
    assert message == bound


def test_python_callers_still_give_seconds() -> None:
    # The unit rule is for what people write in the file; code holds float seconds.
    assert ConnectionsQuery(name="q", interval=90.0).interval == 90.0


@pytest.mark.parametrize("text", ["", "{}", "datadog: {timeout: 5s}", "connections: []"])
def test_a_configuration_without_any_query_is_an_error(text: str) -> None:
    ((where, message),) = problems(text)
    assert where == ""
    assert message.startswith("no queries") and "connections, dns, cases, audience" in message


def test_other_faults_are_named_before_the_missing_queries() -> None:
    ((where, _),) = problems("accounts: [{name: a, app_key_env: B}]")
    assert where == "accounts[0].api_key_file"


@pytest.mark.parametrize(
    ("text", "path", "suggestion"),
    [
        ("connections: [{name: a, group_bys: [x]}]", "connections[0].group_bys", "group_by"),
        ("dns: [{name: a, grop_by: [x]}]", "dns[0].grop_by", "group_by"),
        (
            "cases: [{name: c, group_by: [s], query_filtre: x}]",
            "cases[0].query_filtre",
            "query_filter",
        ),
        ("datadog: {timout: 1s}\ndns: [{name: d}]", "datadog.timout", "timeout"),
        (
            "datadog: {rate_limits: {dns: {limit: 1, perod: 1m}}}\ndns: [{name: d}]",
            "datadog.rate_limits.dns.perod",
            "period",
        ),
        ("conections: [{name: a}]\ndns: [{name: d}]", "conections", "connections"),
    ],
)
def test_an_unknown_key_suggests_the_closest_known_one(
    text: str, path: str, suggestion: str
) -> None:
    assert (path, f"unknown key (did you mean `{suggestion}`?)") in problems(text)


def test_an_unknown_key_like_no_known_one_suggests_nothing() -> None:
    assert problems("connections: [{name: a, colour: red}]") == [
        ("connections[0].colour", "unknown key")
    ]


def test_a_window_shorter_than_the_interval_is_a_warning_in_the_check() -> None:
    config = parse_config(
        "connections:\n  - {name: gappy, interval: 10m, window: 5m}\n  - {name: ok, window: 5m}"
    )
    (warning,) = short_window_warnings(config)
    assert "'gappy'" in warning and "window 5m is shorter than the interval 10m" in warning
    report = summary(config, warnings=short_window_warnings(config))
    assert f"warning: {warning}" in report
