"""`python -m simulator`: run the simulator until SIGTERM/SIGINT.

Prints `listening on http://HOST:PORT` (https:// with `--tls-cert-file`) as one line on
stdout once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import ssl
import sys
from collections.abc import Sequence

from simulator.fortnight import build as build_fortnight
from simulator.options import (
    OptionError,
    SimulatorOptions,
    fault_from_cli,
    scenario_from_cli,
)
from simulator.simulator import Simulator


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="Simulated Datadog API."
    )
    parser.add_argument("--listen", type=_listen, default=("127.0.0.1", 8080), metavar="HOST:PORT")
    parser.add_argument("--api-key", default="sim-api-key")
    parser.add_argument("--app-key", default="sim-app-key")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--universe", type=int, default=300, help="number of connections")
    parser.add_argument("--rate-limit", type=int, default=1000)
    parser.add_argument("--rate-limit-period", type=int, default=60)
    parser.add_argument(
        "--cases-multi-group", choices=("combined", "facets", "first_field"), default="combined"
    )
    parser.add_argument(
        "--no-cnm",
        action="store_true",
        help="an organisation without Cloud Network Monitoring: connections and dns answer 400",
    )
    parser.add_argument(
        "--deny-permission",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="the application key lacks this endpoint's permission: it answers 403 "
        "(repeatable; e.g. cases)",
    )
    parser.add_argument("--tls-cert-file", metavar="PEM", help="serve HTTPS with this certificate")
    parser.add_argument("--tls-key-file", metavar="PEM", help="the certificate's private key")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ENDPOINT:KIND[:ARG]",
        help="e.g. connections:status:500, *:latency:2, dns:rate_limit:30",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="KIND:KEY=VALUE,...[:FACTOR[:START-END]]",
        help="e.g. retransmit_storm:client_service=checkout,server_service=payments-db; "
        "START-END (Unix seconds) limits it to windows ending in that time",
    )
    parser.add_argument(
        "--fortnight",
        type=int,
        metavar="START",
        help="serve the labelled fortnight of --seed starting at START (Unix seconds, "
        "rounded down to midnight UTC): its universe, rhythms and incidents "
        "(simulator/fortnight.py); --universe is ignored",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    options = SimulatorOptions(
        api_key=args.api_key,
        app_key=args.app_key,
        seed=args.seed,
        connections_universe=args.universe,
        rate_limit=args.rate_limit,
        rate_limit_period=args.rate_limit_period,
        cases_multi_group=args.cases_multi_group,
        cnm_enabled=not args.no_cnm,
        denied_endpoints=tuple(args.deny_permission),
    )
    faults = [fault_from_cli(spec) for spec in args.fault]
    scenarios = [scenario_from_cli(spec) for spec in args.scenario]
    if args.fortnight is not None:
        fortnight = build_fortnight(args.seed, args.fortnight)
        options = dataclasses.replace(
            options,
            connections_universe=fortnight.options.connections_universe,
            weekly_swing=fortnight.options.weekly_swing,
        )
        scenarios = [*fortnight.scenarios, *scenarios]
    simulator = Simulator(options)
    for target, fault in faults:
        simulator.set_fault(target, fault)
    for scenario in scenarios:
        simulator.set_scenario(scenario)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    host, port = args.listen
    tls = None
    if args.tls_cert_file:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(args.tls_cert_file, args.tls_key_file)
        except OSError as exc:  # ssl.SSLError included
            raise OptionError(f"--tls-cert-file/--tls-key-file: {exc}") from None
    await simulator.start(host=host, port=port, ssl_context=tls)
    print(f"listening on {simulator.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except OptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
