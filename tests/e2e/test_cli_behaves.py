"""The installed command line behaves like a Prometheus tool: exact flags, --help that lists
the subcommand and the environment, and a --config.check that checks the environment it
reads and says where requests go, without a network and without keys."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import pytest

from exporter.backfill.cli import build_parser as backfill_parser
from exporter.cli import COMMANDS, ENVIRONMENT, build_parser
from tests.helpers import exporter_command, http_get, start_exporter, start_simulator

pytestmark = pytest.mark.e2e

CONFIG = "connections:\n  - {name: pairs, group_by: [client_service], interval: 1h}\n"
API_KEY = "cli-api-key-0b1c2d3e4f5a6b7c8d9e"
APP_KEY = "cli-app-key-9e8d7c6b5a4f3e2d1c0b"


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DD_") and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    }
    return subprocess.run(
        [*exporter_command(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(CONFIG)
    return path


def test_an_abbreviated_flag_is_an_error(config: Path) -> None:
    result = cli("--config.fil", str(config), "--config.check")
    assert result.returncode == 2
    assert "unrecognized arguments: --config.fil" in result.stderr
    backfill = cli("backfill", "--config.fil", str(config), "--start", "1d")
    assert backfill.returncode == 2
    assert "--config.fil" in backfill.stderr


def test_help_lists_the_backfill_command_and_the_environment() -> None:
    result = cli("--help")
    assert result.returncode == 0
    text = result.stdout
    assert "commands:\n  backfill: " in text
    for name in [v.name for v in ENVIRONMENT] + [c.name for c in COMMANDS]:
        assert f"\n  {name}: " in text, name


@pytest.mark.parametrize("parser", [build_parser(), backfill_parser()], ids=["main", "backfill"])
def test_every_flag_has_a_help_line(parser: argparse.ArgumentParser) -> None:
    flags = [a for a in parser._actions if a.option_strings]
    assert flags
    undocumented = [a.option_strings[0] for a in flags if not a.help]
    assert undocumented == []


def test_the_check_fails_on_an_unknown_dd_site_as_the_start_would(config: Path) -> None:
    check = cli("--config.file", str(config), "--config.check", DD_SITE="datadoghq.co")
    start = cli(
        "--config.file", str(config), DD_SITE="datadoghq.co", DD_API_KEY="a", DD_APP_KEY="b"
    )
    for result in (check, start):
        assert result.returncode == 1, result.stdout
        assert "DD_SITE: unknown Datadog site 'datadoghq.co'" in result.stderr


def test_the_check_without_keys_notes_them_and_says_where_requests_go(config: Path) -> None:
    result = cli(
        "--config.file",
        str(config),
        "--config.check",
        DD_SITE="datadoghq.eu",
        HTTPS_PROXY="http://ops:hunter2-proxy@egress.corp:3128",
    )
    assert result.returncode == 0, result.stderr
    assert "note: account default: DD_API_KEY is not set" in result.stdout
    assert (
        "default: https://api.datadoghq.eu (from DD_SITE), "
        "via proxy http://egress.corp:3128 (from HTTPS_PROXY)"
    ) in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


def test_the_start_up_log_and_landing_page_show_the_base_url_and_its_source(
    tmp_path: Path, config: Path
) -> None:
    simulator, url = start_simulator(tmp_path, api_key=API_KEY, app_key=APP_KEY)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DD_")},
        "DD_API_URL": url,
        "DD_SITE": "datadoghq.eu",
        "DD_API_KEY": API_KEY,
        "DD_APP_KEY": APP_KEY,
    }
    try:
        exporter, base = start_exporter(tmp_path, "--config.file", str(config), env=env)
        try:
            page = http_get(base + "/").decode()
            log = exporter.output()
        finally:
            exporter.terminate()
    finally:
        simulator.terminate()
    assert f"<td>default</td><td>{url}</td><td>DD_API_URL</td><td>direct</td>" in page
    assert "Demo data" not in page
    assert f"base_url={url} base_url_from=DD_API_URL" in log
    assert API_KEY not in page + log


def test_demo_mode_marks_the_landing_page(tmp_path: Path) -> None:
    exporter, base = start_exporter(tmp_path, "--demo")
    try:
        page = http_get(base + "/").decode()
    finally:
        exporter.terminate()
    assert "<strong>Demo data</strong>" in page
    assert "<td>--demo</td>" in page
