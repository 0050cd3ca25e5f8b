"""Command line: flags, logging set-up, exit codes. Everything else lives in other modules."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import textwrap
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from prometheus_client import disable_created_metrics
from pydantic import SecretStr

from . import __version__
from .app import (
    DEFAULT_MAX_REQUESTS,
    ConfigSource,
    RunOptions,
    build_exporter,
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
from .datadog.pool import PoolBuilder, Route, default_account, load_trust, proxy_rules, routes
from .flags import ExitCode, HelpFormatter, Variable, epilog, wrap
from .listen import ListenError, parse_listen_address
from .logs import Redactor, setup_logging
from .logs import add_flags as add_log_flags
from .online import check_online, planned_calls
from .online import render as render_online
from .process import pin_mmap_threshold
from .server import DOCS_URL, OWN_PATHS
from .sharding import (
    COUNT_ENV,
    INDEX_ENV,
    POD_NAME_ENVS,
    Shard,
    ShardError,
    resolve_count,
    resolve_shard,
)

log = logging.getLogger("exporter")

DEFAULT_PORT = 10173
DEFAULT_LISTEN_ADDRESS = f":{DEFAULT_PORT}"  # all interfaces (the container image relies on it)
DEMO_API_KEY = "demo-api-key-0000000000000000"
DEMO_APP_KEY = "demo-app-key-0000000000000000"
EXIT_USAGE = 2
EXIT_CONFIG = 1
# The configuration's JSON Schema, shipped in the package (python -m exporter.docs writes it).
SCHEMA_RESOURCE = "config.schema.json"


ENVIRONMENT: tuple[Variable, ...] = (
    Variable("DD_API_KEY", "The Datadog API key (without an accounts: section)."),
    Variable("DD_APP_KEY", "The Datadog application key (without an accounts: section)."),
    Variable(
        "DD_API_KEY_FILE",
        "A file holding the API key instead (a mounted Secret); re-read when it changes.",
    ),
    Variable(
        "DD_APP_KEY_FILE",
        "A file holding the application key instead; re-read when it changes.",
    ),
    Variable(
        "DD_SITE",
        "The Datadog site when the configuration names none (default datadoghq.com).",
    ),
    Variable(
        "DD_API_URL",
        "The API's base URL, overriding datadog.api_url and every site: a proxy, or a "
        "simulator in tests.",
    ),
    Variable("HTTPS_PROXY", "The proxy for https:// Datadog URLs (https_proxy too)."),
    Variable("HTTP_PROXY", "The proxy for http:// Datadog URLs (http_proxy too)."),
    Variable(
        "NO_PROXY",
        "Hosts, domains and networks reached without a proxy, as Go programs read it "
        "(no_proxy too).",
    ),
    Variable(
        "SSL_CERT_FILE",
        "A PEM bundle of CAs trusted instead of the system's (datadog.ca_file adds to them).",
    ),
    Variable(COUNT_ENV, "The shard count when --shard.count is not given."),
    Variable(INDEX_ENV, "This replica's shard when --shard.index is not given."),
    *(
        Variable(
            name,
            f"A StatefulSet pod name whose -N ending is the shard index, without "
            f"--shard.index or {INDEX_ENV}.",
        )
        for name in POD_NAME_ENVS
    ),
)
# What --help lists below the flags, and the command-line reference too.
EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(
        0,
        "Stopped by SIGTERM or SIGINT; --config.check found the configuration valid; "
        "--config.check.online also had every endpoint answer 200.",
    ),
    ExitCode(
        EXIT_CONFIG,
        "Cannot start: an invalid or unreadable configuration or web configuration file "
        "(or one over 4 MiB), an unknown DD_SITE, missing or empty keys, a listen address that "
        "does not resolve or cannot be bound; or an internal error (a bug: the traceback only "
        "at --log.level debug); --config.check.online: an endpoint did not answer 200.",
    ),
    ExitCode(
        EXIT_USAGE,
        "Bad command-line usage: an unknown flag, a malformed --web.listen-address, no "
        "--config.file without --demo, an unusable shard index or count.",
    ),
)


class _PrintSchema(argparse.Action):
    """--config.schema: print the shipped JSON Schema and exit, as --version does."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kw: object) -> None:
        schema = resources.files("exporter").joinpath(SCHEMA_RESOURCE)
        sys.stdout.write(schema.read_text(encoding="utf-8"))
        parser.exit()


class _Addresses(argparse.Action):
    """Repeatable, and the first use replaces the default (action="append" would extend it)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        given = getattr(namespace, self.dest)
        given = [] if given is self.default else given
        setattr(namespace, self.dest, [*given, values])


@dataclass(frozen=True)
class Command:
    """A subcommand, dispatched before the flags are parsed (it has its own --help)."""

    name: str
    meaning: str


# What --help lists above the environment, and the command-line reference too.
COMMANDS: tuple[Command, ...] = (
    Command(
        "backfill",
        "Write Datadog's CNM history of the configured queries as OpenMetrics files for "
        "promtool (datadog-cnm-exporter backfill --help).",
    ),
)


def commands_epilog(commands: Sequence[Command]) -> str:
    """The subcommands as --help lists them below the flags."""
    return "\n".join(
        [
            "commands:",
            *(
                textwrap.fill(
                    f"{c.name}: {c.meaning}",
                    width=79,
                    initial_indent="  ",
                    subsequent_indent="      ",
                )
                for c in commands
            ),
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datadog-cnm-exporter",
        usage="%(prog)s [flags]\n       %(prog)s backfill [flags]",
        description=wrap(
            "Prometheus exporter for Datadog Cloud Network Monitoring, Case Management "
            "and RUM Audience Management. Keys come from DD_API_KEY / DD_APP_KEY (or "
            "DD_API_KEY_FILE / DD_APP_KEY_FILE); DD_SITE picks the Datadog site. "
            "`datadog-cnm-exporter backfill ...` fetches Datadog's history into OpenMetrics "
            "files instead (see its --help)."
        ),
        epilog=commands_epilog(COMMANDS) + "\n\n" + epilog(ENVIRONMENT, EXIT_CODES),
        formatter_class=HelpFormatter,
        # Flags match exactly, as in Prometheus: --config.fil is an error, not --config.file.
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        metavar="PATH",
        help="YAML configuration file (required unless --demo)",
    )
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the configuration and the environment it reads (DD_SITE, DD_API_URL, "
        "proxies, keys present), print its queries, the API calls per hour per account and "
        "endpoint and where requests go, and exit: 0 if valid, 1 if not; no request is made",
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
        "--config.schema",
        action=_PrintSchema,
        help="print the configuration file's JSON Schema and exit",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_addresses",
        action=_Addresses,
        default=[DEFAULT_LISTEN_ADDRESS],
        metavar="HOST:PORT",
        help=f"address to serve on: :PORT means every interface, [::1]:PORT an IPv6 address; "
        f"repeat the flag to serve on several (each with the same --web.config.file); given "
        f"once, it replaces the default ({DEFAULT_PORT} lies outside the fully allocated "
        f"9100-9999 exporter range)",
    )
    parser.add_argument(
        "--web.max-requests",
        dest="max_requests",
        type=_non_negative,
        default=DEFAULT_MAX_REQUESTS,
        metavar="N",
        help="concurrent requests to the metrics path; more get 503; 0: no limit",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="PATH",
        help="TLS and basic auth for the exporter's HTTP server, in the Prometheus "
        "exporter-toolkit format",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="path of the metrics endpoint; starts with / and is none of the exporter's own "
        f"paths ({', '.join(OWN_PATHS)}), else exit 2",
    )
    parser.add_argument(
        "--shard.count",
        dest="shard_count",
        type=int,
        metavar="N",
        help=f"replicas the queries are spread over (default 1, or ${COUNT_ENV}); with "
        "--config.check, print which replica polls which query and the API calls per hour per "
        "shard and account",
    )
    parser.add_argument(
        "--shard.index",
        dest="shard_index",
        type=int,
        metavar="I",
        help=f"this replica's shard, 0..N-1 (default ${INDEX_ENV}, else the -N ending of a "
        "StatefulSet pod name in $POD_NAME or $HOSTNAME); required in one of these forms when "
        "the count is above 1",
    )
    parser.add_argument(
        "--web.docs-url",
        dest="docs_url",
        default=DOCS_URL,
        metavar="URL",
        help="where the landing page's documentation link points (default: the docs/ folder of "
        "the project's repository)",
    )
    add_log_flags(
        parser,
        format_help="one event per line, as logfmt or as a JSON object; a traceback only at "
        "debug, for an unexpected error, and then inside its line",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run against the built-in Datadog simulator with a sample configuration; no keys "
        "needed",
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


def environment_snapshot() -> Mapping[str, str]:
    """The process environment, read once and frozen: the one place the program reads it.
    Every module below gets this copy (tests/unit/test_environment.py keeps it so)."""
    return MappingProxyType(dict(os.environ))


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The command; ``environ`` (default: a snapshot of the process environment, taken now)
    is every variable the program reads."""
    argv = sys.argv[1:] if argv is None else argv
    environ = environment_snapshot() if environ is None else environ
    # Process-wide, so once, here: no `_created` series (Go exporters have none; they only
    # double every counter's output).
    disable_created_metrics()  # type: ignore[no-untyped-call]
    redactor = Redactor()
    if argv[:1] == ["backfill"]:
        return last_resort(lambda: backfill(argv[1:], redactor, environ), redactor)
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format, redactor)
    return last_resort(lambda: _main(args, redactor, environ), redactor)


def last_resort(run: Callable[[], int], redactor: Redactor) -> int:
    """``run()``, so that even a bug ends in one line (exit 1); the traceback only at debug
    (``--log.level debug`` sets the root logger's level)."""
    try:
        return run()
    except Exception as exc:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            print(redactor.redact(traceback.format_exc()), end="", file=sys.stderr)
        line = f"error: internal error: {type(exc).__name__}: {exc}".replace("\n", " | ")
        print(redactor.redact(line), file=sys.stderr)
        return EXIT_CONFIG


def _main(args: argparse.Namespace, redactor: Redactor, environ: Mapping[str, str]) -> int:
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
            return config_check(args, config, redactor, environ)
        shard, shard_source = resolve_shard(args.shard_index, args.shard_count, environ)
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
        return asyncio.run(_run(args, config, redactor, web, shard, environ=environ))
    except (ConfigError, CredentialsError, ListenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def config_check(
    args: argparse.Namespace, config: Config, redactor: Redactor, environ: Mapping[str, str]
) -> int:
    """--config.check: what can be checked without a network, printed; with
    --config.check.online, then what Datadog says (see exporter/online.py)."""
    if args.demo and args.config_check_online:
        print(
            "error: --config.check.online asks Datadog; it does not go with --demo", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        accounts, routes = _where_requests_go(config, environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    notes = unused_environment(config, Environment.from_environ(environ)) if not args.demo else []
    for account in [] if args.demo else accounts:  # --demo brings its own keys
        try:
            Credentials.for_account(account, redactor, environ).check()
        except CredentialsError as exc:
            # CI checks configurations without keys: a note, not an error.
            notes.append(f"account {account.name}: {exc}")
    # The demo polls the simulator: its short intervals cost no one's budget (as at start).
    costly = [] if args.demo else costly_interval_warnings(config)
    warnings = [*short_window_warnings(config), *costly]
    text = summary(
        config,
        resolve_count(args.shard_count, environ),
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
    environ: Mapping[str, str],
) -> tuple[str, bool]:
    builder = PoolBuilder(redactor, Credentials.from_environment(redactor, environ), environ)
    checks = await check_online(config, accounts, builder, routes)
    return render_online(checks, planned_calls(config, accounts))


def _where_requests_go(
    config: Config, environ: Mapping[str, str]
) -> tuple[list[Account], list[Route]]:
    """The accounts and where each one's requests go: ConfigError for an unknown DD_SITE, an
    unusable DD_API_URL or proxy variable, or datadog.ca_file (as at start-up)."""
    url = resolve_base_url(config.datadog, Environment.from_environ(environ))
    accounts = resolve_accounts(config, url, load_trust(config))
    return accounts, routes(accounts, proxy_rules(environ))


async def _run(
    args: argparse.Namespace,
    config: Config,
    redactor: Redactor,
    web: WebSecurity | None,
    shard: Shard,
    *,
    environ: Mapping[str, str],
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
        # Only --demo serves the simulator, so only --demo loads it: every other command starts
        # without it (tests/unit/test_cli_imports.py).
        from simulator import Simulator, SimulatorOptions  # noqa: PLC0415

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
            exporter = build_exporter(
                config,
                demo_url,
                credentials,
                redactor,
                options,
                environ=environ,
                config_source=source,
            )
            await serve_until_signalled(exporter)
        finally:
            await simulator.stop()
        return 0
    # The keys are checked (with every account's) when the exporter builds its pool.
    url, credentials = default_account(config, redactor, environ)
    environment = Environment.from_environ(environ)
    source = reloader(args.config_file, lambda new: resolve_base_url(new.datadog, environment))
    await serve_until_signalled(
        build_exporter(
            config, url, credentials, redactor, options, environ=environ, config_source=source
        )
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
