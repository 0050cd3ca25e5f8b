"""The web configuration file: every mistake is a start-up error naming the key or file."""

from __future__ import annotations

import base64
from pathlib import Path

import bcrypt
import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from exporter.basicauth import BasicAuth
from exporter.config.web import WebConfig, WebConfigError, load_web_config

HASH = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    return directory


def write(directory: Path, text: str) -> Path:
    path = directory / "web.yml"
    path.write_text(text)
    return path


def problems(path: Path) -> str:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    return str(caught.value)


def test_tls_and_users_load_with_paths_relative_to_the_file(certs: Path) -> None:
    path = write(
        certs,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{HASH}'\n",
    )
    security = load_web_config(path)
    assert security.scheme == "https" and set(security.basic_auth_users) == {"prometheus"}


def test_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    security = load_web_config(write(tmp_path, ""))
    assert security.ssl_context is None and security.basic_auth_users == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tls_server_config:\n  cert_file: server.crt\n",
            "tls_server_config.key_file: Field required",
        ),
        (
            "basic_auth_users:\n  admin: plaintext\n",
            "basic_auth_users.admin: must be a bcrypt hash",
        ),
        ("http_server_config:\n  http2: true\n", "http_server_config: unknown key"),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_auth_type: RequireAndVerifyClientCert\n",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_ca_file: ca.crt\n",
            "client_auth_type is NoClientCert",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n",
            "use RequireAndVerifyClientCert",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  min_version: TLS10\n",
            "tls_server_config.min_version: Input should be 'TLS12' or 'TLS13'",
        ),
        (
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  min_version: TLS13\n  max_version: TLS12\n",
            "min_version is above max_version",
        ),
        ("tls_server_config: [\n", "invalid YAML"),
        ("- a\n", "the top level must be a mapping"),
    ],
)
def test_invalid_settings_name_the_key(certs: Path, text: str, expected: str) -> None:
    assert expected in problems(write(certs, text))


def test_a_password_written_where_its_hash_belongs_is_never_echoed(tmp_path: Path) -> None:
    """The start-up error names the user and the key, not the value: a plaintext password
    (a common slip) or a hash would otherwise land in the logs."""
    for value in ("correct-horse-battery-staple", HASH[:-1], HASH.replace("$2b$", "$2x$")):
        shown = problems(write(tmp_path, f"basic_auth_users:\n  admin: '{value}'\n"))
        assert "basic_auth_users.admin: " in shown
        assert value not in shown and value[7:29] not in shown, shown


def test_missing_or_mismatched_files_are_start_up_errors(certs: Path, tmp_path: Path) -> None:
    missing = write(tmp_path, "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n")
    assert "cannot load" in problems(missing) and "nope.crt" in problems(missing)
    other = trustme.CA().issue_cert("127.0.0.1")
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    mismatched = write(
        tmp_path,
        f"tls_server_config:\n  cert_file: {certs / 'server.crt'}\n  key_file: other.key\n",
    )
    assert "tls_server_config.cert_file: cannot load" in problems(mismatched)
    assert "cannot read" in problems(tmp_path / "absent.yml")


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_only_a_basic_header_with_user_colon_password_is_let_in(tmp_path: Path) -> None:
    """The password may hold colons and any Unicode (sent as UTF-8, as the 401 asks for);
    anything but ``Basic base64(user:password)`` is refused, never an error."""
    password = "pa:ss wörd ✓"
    users = {"alice": bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4))}
    auth = BasicAuth(users)

    def basic(raw: bytes) -> str:
        return "Basic " + base64.b64encode(raw).decode()

    assert await auth.allows(basic(f"alice:{password}".encode()))
    assert await auth.allows("basic " + basic(f"alice:{password}".encode())[6:])  # any case
    refused = [
        None,
        "",
        "Basic",
        basic(b"alice"),  # no colon
        basic(f"alice:{password}".encode("utf-16")),  # not UTF-8
        basic(f"alice:{password}".encode())[:-2],  # base64 cut short
        "Basic !!!",
        "Basic é",
        "Bearer " + basic(f"alice:{password}".encode())[6:],
        basic(b"alice:wrong"),
        basic(f"bob:{password}".encode()),
    ]
    for header in refused:
        assert not await auth.allows(header), header


def _with_cost(hashed: str, cost: str) -> str:
    return hashed[:4] + cost + hashed[6:]


def _with_salt_end(hashed: str, char: str) -> str:
    # The salt's 22nd character (index 28) holds only 2 of its 6 bits: ".", "O", "e", "u".
    return hashed[:28] + char + hashed[29:]


@pytest.mark.parametrize(
    ("hashed", "expected"),
    [
        (_with_cost(HASH, "03"), "bcrypt cost 03 is out of range (04 to 31)"),
        (_with_cost(HASH, "00"), "bcrypt cost 00 is out of range"),
        (_with_cost(HASH, "32"), "bcrypt cost 32 is out of range"),
        (_with_cost(HASH, "99"), "bcrypt cost 99 is out of range"),
        (_with_salt_end(HASH, "A"), "bcrypt rejects this hash: its salt is malformed"),
        (_with_salt_end(HASH, "/"), "bcrypt rejects this hash: its salt is malformed"),
        (HASH[:-1], "must be a bcrypt hash"),
        (HASH.replace("$2b$", "$2x$"), "must be a bcrypt hash"),
    ],
)
def test_hashes_bcrypt_would_refuse_at_login_are_refused_at_start_naming_the_user(
    tmp_path: Path, hashed: str, expected: str
) -> None:
    """Before, these loaded and the right password then got HTTP 500 (bcrypt raising)."""
    path = write(tmp_path, f"basic_auth_users:\n  alice: '{HASH}'\n  bob: '{hashed}'\n")
    assert f"basic_auth_users.bob: {expected}" in problems(path)
    assert "alice" not in problems(path)


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
@pytest.mark.parametrize("cost", [4, 5])
async def test_valid_hashes_load_and_check_passwords(
    tmp_path: Path, prefix: str, cost: int
) -> None:
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=cost)).decode()
    hashed = prefix + hashed[4:]
    path = write(tmp_path, f"basic_auth_users:\n  alice: '{hashed}'\n")
    users = load_web_config(path).basic_auth_users
    assert users == {"alice": hashed.encode()}
    auth = BasicAuth(users)
    assert await auth.allows(basic_header("alice", "secret"))
    assert not await auth.allows(basic_header("alice", "wrong"))


def test_the_highest_cost_is_accepted_without_computing_it(tmp_path: Path) -> None:
    """Cost 31 takes days per check; validating it must not."""
    path = write(tmp_path, f"basic_auth_users:\n  alice: '{_with_cost(HASH, '31')}'\n")
    assert set(load_web_config(path).basic_auth_users) == {"alice"}


_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.sampled_from(["$2a$", "$2b$", "$2y$"]),
    rest=st.text(alphabet=_BCRYPT_ALPHABET, min_size=53, max_size=53),
)
def test_every_hash_that_loads_is_one_bcrypt_can_check(prefix: str, rest: str) -> None:
    """Whatever passes validation never makes bcrypt raise at login (cost 04 keeps it fast)."""
    hashed = f"{prefix}04${rest}"
    try:
        WebConfig.model_validate({"basic_auth_users": {"u": hashed}})
    except ValidationError:
        return
    bcrypt.checkpw(b"password", hashed.encode())  # must not raise
