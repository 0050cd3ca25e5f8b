"""End to end: a retransmit storm in (simulated) Datadog reaches an Alertmanager
webhook as the shipped DatadogCNMHighRetransmitRatio alert, and a certificate with 10
days left (Network Health Insights) as DatadogNetworkHealthCertificateExpiringSoon.

Real processes, all on 127.0.0.1 with free ports:

    simulator (retransmit_storm on checkout -> payments-db)
      <- datadog-cnm-exporter (installed CLI, 2 s poll interval, 5 m window)
      <- prometheus (1 s scrape and evaluation, the shipped rules with `for: 0s`)
      -> prometheus-alertmanager (the shipped routing tree and inhibitions, every
         receiver swapped for this test's webhook, 1 s grouping)
      -> webhook served by this test

Passes when the alert for that service pair arrives with the right labels and
annotations, routed to the network team's receiver, and no exporter-health
alert fires. Only the rules' `for:` and Alertmanager's timings are shortened,
in temporary copies; the shipped thresholds and expressions are used as is.
Every wait is bounded (90 s overall); every process is stopped by a fixture
finalizer, pass or fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import dying_with_parent

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = (
    REPO / "deploy" / "prometheus" / "rules" / "recording.yml",
    REPO / "deploy" / "prometheus" / "rules" / "alerting.yml",
)
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"

API_KEY = "e2e-api-key"
APP_KEY = "e2e-app-key"
QUERY = "svc_to_svc"
STORM = {"client_service": "checkout", "server_service": "payments-db"}
ALERT = "DatadogCNMHighRetransmitRatio"
OVERALL_TIMEOUT = 90.0

EXPORTER_CONFIG = f"""\
datadog:
  timeout: 10s
connections:
  - name: {QUERY}
    group_by: [client_service, server_service]
    interval: 2s
    window: 5m
    limit: 1000
network_health:
  - name: insights
    interval: 2s
    window: 15m
"""
# A certificate with 10 days left: the shipped DatadogNetworkHealthCertificateExpiringSoon.
CERTIFICATE = "api.example.com"
CERTIFICATE_ALERT = "DatadogNetworkHealthCertificateExpiringSoon"


# --- tools --------------------------------------------------------------------


def _tool(name: str) -> str:
    """A command from PATH or this interpreter's venv; skip locally, fail in CI."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        reason = f"{name} is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: missing tools fail instead of skipping)")
        pytest.skip(reason)
    assert found is not None
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Deadline:
    """One time budget shared by every wait of the test."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def wait_for(self, what: str, check: Callable[[], Any], diagnose: Callable[[], str]) -> Any:
        while True:
            try:
                result = check()
            except (OSError, urllib.error.URLError, ValueError):
                result = None
            if result:
                return result
            if self.remaining() <= 0:
                pytest.fail(f"timed out after {self.seconds:.0f}s waiting for {what}\n{diagnose()}")
            time.sleep(0.25)


# --- processes ----------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        body = "\n".join(text.splitlines()[-lines:])
        state = "running" if self.popen.poll() is None else f"exited {self.popen.returncode}"
        return f"--- {self.name} ({state}), {self.log}:\n{body}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


class Processes:
    """Starts processes with output to log files; the fixture stops them all."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Process] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        log = self.directory / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                dying_with_parent(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=self.directory,
            )
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def diagnostics(self) -> str:
        return "\n".join(p.tail() for p in self.started)

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


# --- the webhook receiver ------------------------------------------------------


class Webhook:
    """Collects Alertmanager webhook notifications posted to it."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with received.lock:
                    received.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """(receiver, alert) for every alert of every notification so far."""
        with self.lock:
            return [(n["receiver"], a) for n in self.notifications for a in n["alerts"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


# --- helpers -------------------------------------------------------------------


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def _get_json(url: str) -> Any:
    return json.loads(_get(url))


def _shipped_alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def _rules_without_for(directory: Path) -> list[Path]:
    """Copies of the shipped rule files with every `for:` set to 0s."""
    copies = []
    for path in RULE_FILES:
        rules = yaml.safe_load(path.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["for"] = "0s"
        copy = directory / f"e2e-{path.name}"
        copy.write_text(yaml.safe_dump(rules, sort_keys=False))
        copies.append(copy)
    return copies


def _alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """The shipped routing tree and inhibitions; every receiver posts to the test."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["receivers"] = [
        {"name": r["name"], "webhook_configs": [{"url": webhook_url, "send_resolved": False}]}
        for r in config["receivers"]
    ]
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    return config


def _exporter_up(metrics_url: str) -> bool:
    for family in text_string_to_metric_families(_get(metrics_url).decode()):
        if family.name == "datadog_exporter_up":
            return any(
                s.labels == {"collector": "connections", "query": QUERY} and s.value == 1
                for s in family.samples
            )
    return False


def _is_storm_alert(alert: dict[str, Any]) -> bool:
    labels: dict[str, str] = alert["labels"]
    return (
        labels.get("alertname") == ALERT
        and labels.get("client_service") == STORM["client_service"]
        and labels.get("server_service") == STORM["server_service"]
    )


# --- the test ------------------------------------------------------------------


def test_retransmit_storm_is_delivered_to_the_webhook(
    tmp_path: Path, processes: Processes, webhook: Webhook
) -> None:
    """Simulator -> exporter -> Prometheus -> Alertmanager -> webhook, with the shipped rules."""
    exporter_cli = _tool("datadog-cnm-exporter")
    prometheus = _tool("prometheus")
    alertmanager = _tool("prometheus-alertmanager")
    deadline = Deadline(OVERALL_TIMEOUT)

    # Simulated Datadog with the storm on one service pair.
    simulator = processes.start(
        "simulator",
        [
            sys.executable,
            "-m",
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            API_KEY,
            "--app-key",
            APP_KEY,
            "--seed",
            "42",
            "--scenario",
            f"retransmit_storm:client_service={STORM['client_service']},"
            f"server_service={STORM['server_service']}",
            "--scenario",
            f"nhi_certificate_expiry:domain_name={CERTIFICATE}:10",
        ],
    )

    def simulator_url() -> str | None:
        for line in simulator.log.read_text().splitlines():
            if line.startswith("listening on "):
                return line.removeprefix("listening on ").strip()
        return None

    api_url = deadline.wait_for("the simulator", simulator_url, processes.diagnostics)

    # The exporter under test, as installed.
    exporter_port = _free_port()
    config_file = tmp_path / "exporter.yml"
    config_file.write_text(EXPORTER_CONFIG)
    processes.start(
        "exporter",
        [
            exporter_cli,
            "--config.file",
            str(config_file),
            "--web.listen-address",
            f"127.0.0.1:{exporter_port}",
        ],
        env={"DD_API_URL": api_url, "DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY},
    )
    exporter_url = f"http://127.0.0.1:{exporter_port}"
    deadline.wait_for(
        "the exporter's /-/ready",
        lambda: _get(f"{exporter_url}/-/ready") is not None,
        processes.diagnostics,
    )
    # datadog_exporter_up is 0 until a query's first poll completes; start
    # Prometheus after it so `for: 0s` judges the running exporter, not its
    # first two seconds.
    deadline.wait_for(
        "the exporter's first successful poll",
        lambda: _exporter_up(f"{exporter_url}/metrics"),
        processes.diagnostics,
    )

    # Alertmanager with the shipped routing, delivering to the webhook.
    am_port = _free_port()
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump(_alertmanager_config(webhook.url), sort_keys=False))
    processes.start(
        "alertmanager",
        [
            alertmanager,
            f"--config.file={am_config}",
            f"--storage.path={tmp_path / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
    )
    am_url = f"http://127.0.0.1:{am_port}"
    deadline.wait_for(
        "Alertmanager's /-/ready",
        lambda: _get(f"{am_url}/-/ready") is not None,
        processes.diagnostics,
    )

    # Prometheus scraping the exporter, evaluating the shipped rules every second.
    prom_port = _free_port()
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in _rules_without_for(tmp_path)],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "datadog-cnm-exporter",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                    }
                ],
            },
            sort_keys=False,
        )
    )
    processes.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
    )
    prom_url = f"http://127.0.0.1:{prom_port}"

    def diagnostics() -> str:
        parts = [processes.diagnostics()]
        for path in ("/api/v1/targets", "/api/v1/alerts", "/api/v1/rules"):
            try:
                parts.append(f"--- prometheus {path}:\n{_get(prom_url + path).decode()[:4000]}")
            except OSError as exc:
                parts.append(f"--- prometheus {path}: {exc}")
        parts.append(f"--- webhook received: {json.dumps(webhook.alerts(), indent=1)[:4000]}")
        return "\n".join(parts)

    # The alert arrives at the webhook.
    def storm_delivered() -> list[tuple[str, dict[str, Any]]]:
        return [(rcv, a) for rcv, a in webhook.alerts() if _is_storm_alert(a)]

    [(receiver, alert), *_] = deadline.wait_for(
        f"{ALERT} for checkout -> payments-db at the webhook", storm_delivered, diagnostics
    )

    assert alert["status"] == "firing"
    assert receiver == "network-chat", "team=network, severity=warning routes to network-chat"
    expected_labels = {
        "alertname": ALERT,
        "severity": "warning",
        "team": "network",
        "job": "datadog-cnm-exporter",
        "instance": f"127.0.0.1:{exporter_port}",
        "query": QUERY,
        **STORM,
    }
    assert alert["labels"] == expected_labels
    annotations = alert["annotations"]
    assert annotations["summary"] == (
        "High TCP retransmit ratio in svc_to_svc, client_service=checkout, "
        "server_service=payments-db"
    )
    assert "of query svc_to_svc on" in annotations["description"]
    assert "were retransmitted, above 5%" in annotations["description"]
    assert annotations["runbook_url"].endswith("#datadogcnmhighretransmitratio")

    # Nothing else: no exporter-health alert was delivered or is active, and the
    # shipped threshold does not flag any of the simulator's healthy pairs.
    health = {r["alert"] for r in _shipped_alerts() if r["labels"]["team"] == "observability"}
    delivered = {a["labels"]["alertname"] for _, a in webhook.alerts()}
    assert not delivered & health, diagnostics()
    active = _get_json(f"{prom_url}/api/v1/alerts")["data"]["alerts"]
    assert not {a["labels"]["alertname"] for a in active} & health, diagnostics()
    others = [
        a["labels"] for a in active if a["labels"]["alertname"] == ALERT and not _is_storm_alert(a)
    ]
    assert others == [], f"healthy pairs flagged: {others}"

    # Network Health Insights: the certificate with 10 days left arrives the same way.
    def certificate_delivered() -> list[tuple[str, dict[str, Any]]]:
        return [
            (rcv, a)
            for rcv, a in webhook.alerts()
            if a["labels"].get("alertname") == CERTIFICATE_ALERT
        ]

    [(receiver, alert), *_] = deadline.wait_for(
        f"{CERTIFICATE_ALERT} for {CERTIFICATE} at the webhook", certificate_delivered, diagnostics
    )
    assert receiver == "network-chat"
    assert alert["labels"] == {
        "alertname": CERTIFICATE_ALERT,
        "severity": "warning",
        "team": "network",
        "job": "datadog-cnm-exporter",
        "instance": f"127.0.0.1:{exporter_port}",
        "query": "insights",
        "domain": CERTIFICATE,
        "client_service": "api-gateway",
        "server_service": "checkout",
    }
    assert (
        alert["annotations"]["summary"]
        == f"TLS certificate of {CERTIFICATE} expires in 10d 0h 0m 0s"
    )
    # The simulator's other insights are healthy: no other network health alert.
    active = _get_json(f"{prom_url}/api/v1/alerts")["data"]["alerts"]
    flagged = {
        a["labels"]["alertname"]
        for a in active
        if a["labels"]["alertname"].startswith("DatadogNetworkHealth")
    }
    assert flagged == {CERTIFICATE_ALERT}, diagnostics()
    assert deadline.remaining() > 0
