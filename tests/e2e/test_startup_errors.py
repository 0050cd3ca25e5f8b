"""The installed CLI refusing to start: one ``error:`` line naming the cause, exit 1 (2 for
usage), never a traceback.

The machine runs the tests as root, for whom most of these faults do not happen on their
own; they are made real rather than simulated: a capability dropped with ``setpriv`` (a
privileged port, a file mode of 000) and a network namespace without interfaces for a name
that cannot be resolved (so no DNS query leaves the machine either).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.helpers import IN_CI, exporter_command, require_tool

pytestmark = pytest.mark.e2e

API_KEY = "e2e-api-key-0d1c2b3a4f5e6d7c8b9a0f1e"
APP_KEY = "e2e-app-key-9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"
CONFIG = "connections:\n  - name: pairs\n    interval: 1m\n"
ROOT = os.geteuid() == 0


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(extra)
    return env


def keys_env(**extra: str) -> dict[str, str]:
    # Nothing listens on port 9: no test here gets as far as polling.
    return clean_env(
        DD_API_URL="http://127.0.0.1:9", DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY, **extra
    )


def refused(*args: str, env: dict[str, str], prefix: list[str] | None = None) -> tuple[int, str]:
    """Run the CLI expecting it to stop at start-up; its exit code and its one error line."""
    result = subprocess.run(
        [*(prefix or []), *exporter_command(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert API_KEY not in output and APP_KEY not in output
    return result.returncode, errors[0]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI runs as root and must be able to do this")
    pytest.skip(reason)


def no_capability(*names: str) -> list[str]:
    """A prefix that runs the CLI without the named capabilities: root loses its exemption."""
    if not ROOT:
        return []
    dropped = ",".join(f"-{name}" for name in names)
    return [require_tool("setpriv"), f"--bounding-set={dropped}", f"--inh-caps={dropped}"]


def own_network() -> list[str]:
    """A prefix that runs the CLI in a new network namespace (no interface is up)."""
    unshare = require_tool("unshare")
    prefix = [unshare, "--net"] if ROOT else [unshare, "--net", "--map-root-user"]
    if subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode != 0:
        unavailable("cannot create a network namespace here")
    return prefix


def test_a_port_in_use_is_named(config: Path, busy_port: int) -> None:
    address = f"127.0.0.1:{busy_port}"
    code, error = refused(
        "--config.file", str(config), "--web.listen-address", address, env=keys_env()
    )
    assert code == 1
    assert error.startswith(f"error: --web.listen-address {address}: cannot listen: ")
    assert "Address already in use" in error


def test_the_same_address_twice_is_a_port_in_use(config: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    code, error = refused(
        "--config.file",
        str(config),
        *("--web.listen-address", address) * 2,
        env=keys_env(),
    )
    assert code == 1
    assert address in error and "Address already in use" in error


def test_an_address_not_on_this_machine_is_named(config: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): assigned to no machine. Binding sends nothing.
    code, error = refused(
        "--config.file", str(config), "--web.listen-address", "192.0.2.1:10173", env=keys_env()
    )
    assert code == 1
    assert error.startswith("error: --web.listen-address 192.0.2.1:10173: cannot listen: ")
    assert "Cannot assign requested address" in error


def test_a_privileged_port_without_the_capability_is_permission_denied(config: Path) -> None:
    if ROOT:
        # A namespace of its own: there the privileged ports are the default ones (below 1024)
        # whatever the machine's net.ipv4.ip_unprivileged_port_start says.
        prefix = own_network() + no_capability("net_bind_service")
    else:
        start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text().strip()
        if int(start) <= 80:
            unavailable(f"any user may bind port 80 here (ip_unprivileged_port_start={start})")
        prefix = []
    code, error = refused(
        "--config.file",
        str(config),
        "--web.listen-address",
        ":80",
        env=keys_env(),
        prefix=prefix,
    )
    assert code == 1
    assert error.startswith("error: --web.listen-address :80: cannot listen: Permission denied")
    assert "CAP_NET_BIND_SERVICE" in error


def test_a_listen_host_that_does_not_resolve_is_named(config: Path) -> None:
    # In a namespace without interfaces the resolver cannot be reached: the lookup fails the
    # way a typo'd name does, and no query leaves the machine.
    code, error = refused(
        "--config.file",
        str(config),
        "--web.listen-address",
        "exporter.invalid:10173",
        env=keys_env(),
        prefix=own_network(),
    )
    assert code == 1
    assert error.startswith(
        "error: --web.listen-address exporter.invalid:10173: cannot resolve exporter.invalid: "
    )


@pytest.mark.parametrize(
    ("address", "cause"),
    [
        ("[::1:10173", "missing ']'"),
        ("::1:10173", "too many colons"),
        ("[::1]", "missing :PORT"),
        ("127.0.0.1", "missing :PORT"),
        ("127.0.0.1:65536", "port '65536'"),
        ("127.0.0.1:http", "port 'http'"),
        ("my host:10173", "'my host' is not a host name"),
    ],
)
def test_a_malformed_listen_address_is_a_usage_error(address: str, cause: str) -> None:
    code, error = refused("--demo", "--web.listen-address", address, env=clean_env())
    assert code == 2
    assert error.startswith(f"error: --web.listen-address {address!r}: ")
    assert cause in error


def test_a_bad_second_listen_address_is_a_usage_error() -> None:
    code, error = refused(
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.listen-address",
        "[::1:10173",
        env=clean_env(),
    )
    assert code == 2 and "'[::1:10173'" in error


def test_no_configuration_is_a_usage_error() -> None:
    code, error = refused(env=keys_env())
    assert code == 2
    assert error == "error: --config.file is required (or use --demo)"


def test_a_directory_as_the_config_file_is_named(tmp_path: Path) -> None:
    code, error = refused("--config.file", str(tmp_path), env=keys_env())
    assert code == 1
    assert error == f"error: cannot read configuration file {tmp_path}: Is a directory"


def test_an_unreadable_config_file_is_permission_denied(config: Path) -> None:
    config.chmod(0)
    code, error = refused(
        "--config.file",
        str(config),
        env=keys_env(),
        prefix=no_capability("dac_override", "dac_read_search"),
    )
    assert code == 1
    assert error == f"error: cannot read configuration file {config}: Permission denied"


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    code, error = refused("--config.file", str(missing), env=keys_env())
    assert code == 1
    assert error == f"error: cannot read configuration file {missing}: No such file or directory"


def test_a_directory_as_the_web_config_file_is_named(tmp_path: Path) -> None:
    code, error = refused("--demo", "--web.config.file", str(tmp_path), env=clean_env())
    assert code == 1
    assert error == f"error: cannot read web configuration file {tmp_path}: Is a directory"


def test_an_unreadable_web_config_file_is_permission_denied(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("{}\n")
    web.chmod(0)
    code, error = refused(
        "--demo",
        "--web.config.file",
        str(web),
        env=clean_env(),
        prefix=no_capability("dac_override", "dac_read_search"),
    )
    assert code == 1
    assert error == f"error: cannot read web configuration file {web}: Permission denied"


def bcrypt_variants() -> dict[str, str]:
    good = bcrypt.hashpw(b"scrape-password", bcrypt.gensalt(rounds=4)).decode()
    # The salt is the 22 characters after "$2b$04$"; its last one carries 2 bits only, so
    # only ".", "O", "e" and "u" are valid there.
    bad_salt = good[:28] + ("A" if good[28] != "A" else "B") + good[29:]
    return {
        "cost 03": good[:4] + "03" + good[6:],
        "cost 32": good[:4] + "32" + good[6:],
        "bad salt": bad_salt,
        "truncated": good[:-1],
    }


CAUSES = {
    "cost 03": "bcrypt cost 03 is out of range",
    "cost 32": "bcrypt cost 32 is out of range",
    "bad salt": "its salt is malformed",
    "truncated": "must be a bcrypt hash",
}


@pytest.mark.parametrize("variant", list(CAUSES))
def test_a_bcrypt_hash_bcrypt_would_reject_stops_the_start(tmp_path: Path, variant: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt_variants()[variant]}'\n")
    code, error = refused("--demo", "--web.config.file", str(web), env=clean_env())
    assert code == 1
    assert error.startswith(
        f"error: invalid web configuration {web}: basic_auth_users.prometheus: "
    )
    assert CAUSES[variant] in error


@pytest.mark.parametrize("variable", ["DD_API_KEY_FILE", "DD_APP_KEY_FILE"])
def test_an_empty_key_file_is_named(config: Path, tmp_path: Path, variable: str) -> None:
    empty = tmp_path / "key"
    empty.write_text("\n")
    env = clean_env(DD_API_URL="http://127.0.0.1:9", DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
    env[variable] = str(empty)
    code, error = refused("--config.file", str(config), env=env)
    assert code == 1
    assert error == f"error: {variable} {empty} is empty"
