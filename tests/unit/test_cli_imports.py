"""Only --demo loads the simulator: every other command (the version, the configuration
check, the backfill, the exporter serving Datadog) starts without importing it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import exporter

DEMO_CONFIG = str(Path(exporter.__file__).parent / "demo.yml")

# Runs each command line of argv[1] (JSON) through the CLI in one fresh interpreter, one
# after the other, and prints which simulator modules were loaded after each.
PROBE = """
import json, sys
from exporter.cli import main
loaded = {}
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
    except SystemExit:  # --version and --help exit through argparse
        pass
    loaded[" ".join(argv)] = sorted(
        m for m in sys.modules if m == "simulator" or m.startswith("simulator.")
    )
print("\\nSIMULATOR_MODULES=" + json.dumps(loaded))
"""


def simulator_modules(*commands: list[str]) -> dict[str, list[str]]:
    """For each command line, the simulator's modules loaded once it (and the ones before it,
    in the same process) had finished; with no DD_* variable set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
    )
    marker = result.stdout.rpartition("SIMULATOR_MODULES=")[2]
    assert marker, result.stdout + result.stderr
    loaded: dict[str, list[str]] = json.loads(marker)
    return loaded


def test_commands_other_than_the_demo_never_load_the_simulator() -> None:
    loaded = simulator_modules(
        ["--version"],
        ["--help"],
        ["--config.check", "--config.file", DEMO_CONFIG],
        ["--demo", "--config.check"],
        ["backfill", "--help"],
        # Serving Datadog: gets as far as building the client pool, which finds no key.
        ["--config.file", DEMO_CONFIG, "--web.listen-address=127.0.0.1:0"],
    )
    assert len(loaded) == 6
    assert {command: modules for command, modules in loaded.items() if modules} == {}


def test_the_demo_loads_the_simulator() -> None:
    """The probe sees an import when there is one: the demo starts its simulator, then stops
    because its listen address is taken."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = ["--demo", f"--web.listen-address=127.0.0.1:{port}"]
        loaded = simulator_modules(command)
    assert "simulator" in loaded[" ".join(command)]
