"""The installed CLI with --web.config.file: a TLS + basic-auth scrape, and bad files refused."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import urllib.error
from pathlib import Path

import bcrypt
import pytest
import trustme

from tests.helpers import exporter_command, http_get, start_exporter, wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "scrape-password"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DD_")}


def test_demo_over_tls_with_basic_auth(tmp_path: Path) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    exporter, base = start_exporter(
        tmp_path, "--demo", "--web.config.file", str(web), env=clean_env()
    )
    url = base.replace("http://", "https://")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    auth = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    try:
        assert "scheme=https" in exporter.output()
        assert http_get(url + "/-/healthy", context=context).startswith(b"Healthy")
        with pytest.raises(urllib.error.HTTPError) as caught:
            http_get(url + "/metrics", context=context)
        assert caught.value.code == 401
        text = wait_for(
            lambda: http_get(url + "/metrics", headers={"Authorization": auth}, context=context),
            timeout=20,
            what="an authorised TLS scrape",
        )
        assert b"datadog_exporter_build_info" in text
    finally:
        assert exporter.terminate() == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("basic_auth_users:\n  admin: hunter2\n", "basic_auth_users.admin: must be a bcrypt hash"),
        ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n", "cannot load"),
        ("tls_config: {}\n", "tls_config: unknown key"),
    ],
)
def test_malformed_web_config_exits_1_with_a_clear_message(
    tmp_path: Path, text: str, expected: str
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(text)
    result = subprocess.run(
        [*exporter_command(), "--demo", "--web.config.file", str(web)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 1
    assert expected in result.stderr and str(web) in result.stderr
    assert "Traceback" not in result.stderr
