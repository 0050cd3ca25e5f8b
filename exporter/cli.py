"""Command line: flags, logging set-up, exit codes. Everything else lives in other modules."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from pydantic import SecretStr

from . import __version__
from .app import (
    DEFAULT_MAX_REQUESTS,
    ConfigSource,
    Exporter,
    ListenError,
    RunOptions,
    parse_listen_address,
    serve_until_signalled,
)
from .backfill.cli import main as backfill
from .config.accounts import (
    Account,
    BaseUrl,
    Environment,
    resolve_accounts,
    resolve_base_url,
    unused_environment,
)
from .config.errors import ConfigError
from .config.report import summary
from .config.schema import (
    Config,
    costly_interval_warnings,
    load_config,
    parse_config,
    short_window_warnings,
)
from .config.web import WebSecurity, load_web_config
from .datadog.credentials import Credentials, CredentialsError, KeySource
from .datadog.pool import ClientPool, Route, routes
from .datadog.proxies import ProxyError, ProxyRules
from .logs import LEVELS, Redactor, setup_logging
from .online import check_online, planned_calls
from .online import render as render_online
from .process import pin_mmap_threshold
from .server import DOCS_URL, OWN_PATHS
from .sharding import (
    COUNT_ENV,
    INDEX_ENV,
    Shard,
    ShardError,
    resolve_count,
    resolve_shard,
)
from .simulator import Simulator, SimulatorOptions

log = logging.getLogger("exporter")

DEFAULT_PORT = 10173
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"  # all interfaces (the container image relies on it)
DEMO_API_KEY = "demo-api-key-0000000000000000"
DEMO_APP_KEY = "demo-app-key-0000000000000000"
EXIT_USAGE = 2
EXIT_CONFIG = 1


# The environment the exporter reads: data, for --help and the generated command-line
# reference (docs/reference/command-line.md). Keys are named, never shown.
ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("DD_API_KEY", "the Datadog API key (the default account)"),
    ("DD_APP_KEY", "the Datadog application key (the default account)"),
    ("DD_API_KEY_FILE", "a file holding the API key instead, re-read when it changes"),
    ("DD_APP_KEY_FILE", "a file holding the application key instead, re-read when it changes"),
    (
        "DD_SITE",
        "the Datadog site (datadoghq.com, datadoghq.eu, ...) unless datadog.site or "
        "datadog.api_url is set",
    ),
    ("DD_API_URL", "the API base URL, wins over datadog.api_url and every site setting"),
    ("HTTPS_PROXY", "the proxy for https:// requests to Datadog (as Go programs read it)"),
    ("HTTP_PROXY", "the proxy for http:// requests to Datadog"),
    ("NO_PROXY", "hosts, domains and CIDR ranges reached without the proxy"),
    ("SSL_CERT_FILE", "a CA bundle replacing the system's (datadog.ca_file adds to it)"),
    (COUNT_ENV, "the default of --shard.count"),
    (INDEX_ENV, "the default of --shard.index"),
    ("POD_NAME", "a StatefulSet pod name whose -N ending is the shard index (else HOSTNAME)"),
)
# Subcommands, dispatched before the flags are parsed (each has its own --help).
COMMANDS: tuple[tuple[str, str], ...] = (
    (
        "backfill",
        "write Datadog's CNM history of the configured queries as OpenMetrics files "
        "for promtool (datadog-cnm-exporter backfill --help)",
    ),
)
DESCRIPTION = (
    "Prometheus exporter for Datadog Cloud Network Monitoring, Case Management and RUM "
    "Audience Management."
)


def _epilog() -> str:
    """The subcommands and environment variables, as --help lists them after the flags."""

    def table(title: str, rows: tuple[tuple[str, str], ...]) -> str:
        width = max(len(name) for name, _ in rows) + 4
        lines = [f"{title}:"]
        for name, text in rows:
            wrapped = textwrap.wrap(text, 79 - width)
            lines.append(f"  {name:<{width - 2}}{wrapped[0]}")
            lines += [" " * width + more for more in wrapped[1:]]
        return "\n".join(lines)

    return table("commands", COMMANDS) + "\n\n" + table("environment variables", ENVIRONMENT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datadog-cnm-exporter",
        usage="%(prog)s [flags]\n       %(prog)s backfill [flags]",
        description=DESCRIPTION,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # Flags match exactly, as in Prometheus: --config.fil is an error, not --config.file.
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        metavar="PATH",
        help="YAML configuration file",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration and the environment it reads (DD_SITE, DD_API_URL, "
        "proxies, keys present), print the queries, their API calls per hour and where requests "
        "go, and exit; no request is made",
    )
    parser.add_argument(
        "--config.check.online",
        dest="config_check_online",
        action="store_true",
        help="as --config.check, then ask Datadog: per account one key validation "
        "(GET /api/v1/validate) and one call per endpoint with a configured query; exit 0 only "
        "when every endpoint answered 200",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_addresses",
        action="append",
        metavar="HOST:PORT",
        help=f"address to serve on (default {DEFAULT_LISTEN_ADDRESS}); repeat the flag to serve on "
        "several addresses",
    )
    parser.add_argument(
        "--web.max-requests",
        dest="max_requests",
        type=_non_negative,
        default=DEFAULT_MAX_REQUESTS,
        metavar="N",
        help=f"concurrent requests to the metrics path; more get 503 (default "
        f"{DEFAULT_MAX_REQUESTS}, 0: no limit)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="PATH",
        help="TLS and basic-auth configuration (Prometheus exporter-toolkit format)",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="path of the metrics endpoint (default /metrics)",
    )
    parser.add_argument(
        "--shard.count",
        dest="shard_count",
        type=int,
        metavar="N",
        help=f"replicas the queries are spread over (default 1, or ${COUNT_ENV}); with "
        "--config.check, print which replica polls which query",
    )
    parser.add_argument(
        "--shard.index",
        dest="shard_index",
        type=int,
        metavar="I",
        help=f"this replica's shard, 0..N-1 (default ${INDEX_ENV}, else the -N ending of a "
        "StatefulSet pod name in $POD_NAME or $HOSTNAME)",
    )
    parser.add_argument(
        "--web.docs-url",
        dest="docs_url",
        default=DOCS_URL,
        metavar="URL",
        help="where the landing page's documentation link points (default: the docs/ folder of "
        "the project's repository)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=list(LEVELS),
        default="info",
        help="only log messages of this severity or above (default info)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=["logfmt", "json"],
        default="logfmt",
        help="log line format (default logfmt)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run against the built-in Datadog simulator; no keys needed",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"datadog-cnm-exporter {__version__}",
        help="print the version and exit",
    )
    return parser


def _non_negative(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, 0 or more")
    return int(text)


class UsageError(Exception):
    """The command line is wrong (exit 2)."""


def check_usage(args: argparse.Namespace) -> None:
    """What argparse cannot check itself: the listen addresses, the metrics path and a
    configuration source."""
    if args.listen_addresses is None:
        # Not argparse's default: with action="append" a default is extended, not replaced.
        args.listen_addresses = [DEFAULT_LISTEN_ADDRESS]
    for address in args.listen_addresses:
        try:
            parse_listen_address(address)
        except ValueError as exc:
            raise UsageError(f"--web.listen-address {address!r}: {exc}") from None
    path = args.telemetry_path
    if not path.startswith("/"):
        raise UsageError(f"--web.telemetry-path {path!r}: must start with /")
    if path in OWN_PATHS:
        raise UsageError(
            f"--web.telemetry-path {path!r}: one of the exporter's own paths "
            f"({', '.join(OWN_PATHS)}); choose another"
        )
    if args.config_file is None and not args.demo:
        raise UsageError("--config.file is required (or use --demo)")


def load(args: argparse.Namespace) -> Config:
    if args.demo and args.config_file is None:
        text = resources.files("exporter").joinpath("demo.yml").read_text(encoding="utf-8")
        return parse_config(text, "demo configuration")
    return load_config(args.config_file)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["backfill"]:
        return backfill(argv[1:])
    args = build_parser().parse_args(argv)
    redactor = Redactor()
    setup_logging(args.log_level, args.log_format, redactor)
    try:
        return _main(args, redactor)
    except Exception as exc:
        # Last resort, so that even a bug ends in one line; the traceback only at debug.
        if args.log_level == "debug":
            print(redactor.redact(traceback.format_exc()), end="", file=sys.stderr)
        line = f"error: internal error: {type(exc).__name__}: {exc}".replace("\n", " | ")
        print(redactor.redact(line), file=sys.stderr)
        return EXIT_CONFIG


def _main(args: argparse.Namespace, redactor: Redactor) -> int:
    try:
        check_usage(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load(args)
        web = load_web_config(args.web_config_file) if args.web_config_file else None
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        if args.config_check or args.config_check_online:
            return config_check(args, config, redactor)
        shard, shard_source = resolve_shard(args.shard_index, args.shard_count, os.environ)
    except ShardError as exc:
        print(f"error: sharding: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.demo:
        for warning in costly_interval_warnings(config):
            log.warning(warning)
    if shard.sharded:
        log.info(
            "sharding",
            extra={"index": shard.index, "count": shard.count, "index_from": shard_source},
        )
    pin_mmap_threshold()
    try:
        return asyncio.run(_run(args, config, redactor, web, shard))
    except (ConfigError, CredentialsError, ListenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def config_check(args: argparse.Namespace, config: Config, redactor: Redactor) -> int:
    """--config.check: what can be checked without a network, printed; with
    --config.check.online, then what Datadog says (see exporter/online.py)."""
    if args.demo and args.config_check_online:
        print(
            "error: --config.check.online asks Datadog; it does not go with --demo", file=sys.stderr
        )
        return EXIT_USAGE
    environ = dict(os.environ)
    try:
        accounts, routes = _where_requests_go(config, environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    notes = unused_environment(config, Environment()) if not args.demo else []
    for account in accounts:
        try:
            Credentials.for_account(account, redactor, environ).check()
        except CredentialsError as exc:
            # CI checks configurations without keys: a note, not an error.
            notes.append(f"account {account.name}: {exc}")
    warnings = [*short_window_warnings(config), *costly_interval_warnings(config)]
    text = summary(
        config,
        resolve_count(args.shard_count, os.environ),
        routes=["the built-in simulator (--demo)"]
        if args.demo
        else [route.line() for route in routes],
        warnings=warnings,
        notes=notes,
    )
    print(text)
    if not args.config_check_online:
        return 0
    report, ok = asyncio.run(_check_online(config, accounts, routes, redactor, environ))
    print(report)
    return 0 if ok else EXIT_CONFIG


async def _check_online(
    config: Config,
    accounts: list[Account],
    routes: list[Route],
    redactor: Redactor,
    environ: dict[str, str],
) -> tuple[str, bool]:
    credentials = Credentials.from_environment(redactor, environ)
    pool = ClientPool(redactor, credentials, lambda endpoint, code, account: None, environ)
    try:
        checks = await check_online(config, accounts, pool, routes)
    finally:
        await pool.close()
    return render_online(checks, planned_calls(config, accounts))


def _where_requests_go(
    config: Config, environ: dict[str, str]
) -> tuple[list[Account], list[Route]]:
    """The accounts and where each one's requests go: ConfigError for an unknown DD_SITE, an
    unusable DD_API_URL or proxy variable (as at start-up)."""
    accounts = resolve_accounts(config, resolve_base_url(config.datadog, Environment()))
    try:
        proxies = ProxyRules.from_environ(environ)
    except ProxyError as exc:
        raise ConfigError([(exc.variable, str(exc))], "environment") from None
    return accounts, routes(accounts, proxies)


async def _run(
    args: argparse.Namespace,
    config: Config,
    redactor: Redactor,
    web: WebSecurity | None,
    shard: Shard,
) -> int:
    options = RunOptions(
        args.listen_addresses,
        args.telemetry_path,
        web,
        shard,
        max_requests=args.max_requests,
        demo=args.demo,
        docs_url=args.docs_url,
    )
    if args.demo:
        simulator = Simulator(SimulatorOptions(api_key=DEMO_API_KEY, app_key=DEMO_APP_KEY))
        await simulator.start(host="127.0.0.1", port=0)
        log.info("demo mode: serving the built-in Datadog simulator", extra={"url": simulator.url})
        credentials = Credentials(
            KeySource("DD_API_KEY", SecretStr(DEMO_API_KEY)),
            KeySource("DD_APP_KEY", SecretStr(DEMO_APP_KEY)),
            redactor,
        )
        try:
            demo_url = BaseUrl(simulator.url, "--demo")
            source = reloader(args.config_file, lambda _config: demo_url)
            await serve_until_signalled(
                Exporter(config, demo_url, credentials, redactor, options, config_source=source)
            )
        finally:
            await simulator.stop()
        return 0
    environment = Environment()
    url = resolve_base_url(config.datadog, environment)
    # Checked (with every account's keys) when the exporter is built.
    credentials = Credentials.from_environment(redactor, dict(os.environ))
    source = reloader(args.config_file, lambda new: resolve_base_url(new.datadog, environment))
    await serve_until_signalled(
        Exporter(config, url, credentials, redactor, options, config_source=source)
    )
    return 0


def reloader(path: Path | None, url_for: Callable[[Config], str | BaseUrl]) -> ConfigSource | None:
    """What SIGHUP and POST /-/reload re-read: the configuration file, if there is one."""
    if path is None:
        return None

    def read() -> tuple[Config, str | BaseUrl]:
        config = load_config(path)
        return config, url_for(config)

    return read
