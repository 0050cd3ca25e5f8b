"""Shared test helpers: subprocesses of the installed CLI and simulator, /metrics parsing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collectors.protocol import QueryJob
from exporter.exposition import Rendered, escape_label_value

IN_CI = os.environ.get("CI", "").lower() == "true"
BIN = Path(sys.executable).parent
SampleKey = tuple[str, frozenset[tuple[str, str]]]
Samples = dict[SampleKey, float]
_T = TypeVar("_T")


def require_tool(name: str) -> str:
    """The path of a real tool; skip locally when missing, fail in CI."""
    path = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if path is None:
        message = f"{name} is not installed"
        if IN_CI:
            pytest.fail(f"{message}; CI must install it (.ci/run)")
        pytest.skip(message)
    return path


def exporter_command() -> list[str]:
    return [require_tool("datadog-cnm-exporter")]


def parse_metrics(text: str) -> Samples:
    """Every sample of an exposition, failing on a duplicate series."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


# One valid query per configuration section, each with what its section requires: tests that
# cover every registered collector build their queries from this
# (tests/unit/collectors/test_registry.py fails when a registered collector has no example here).
EXAMPLE_QUERIES: dict[str, dict[str, object]] = {
    "connections": {"name": "q", "group_by": ["client_service", "server_service"]},
    "dns": {"name": "q"},
    "cases": {"name": "q", "group_by": ["status"]},
    "audience": {"name": "q", "entity": "users"},
    "network_health": {"name": "q"},
}


def render_body(job: QueryJob, body: bytes) -> Rendered:
    """One poll's pure work on an answer, as the scheduler does it: decode, then render."""
    return job.render(job.decode(body))


def format_labels(pairs: list[tuple[str, str]]) -> str:
    """``{a="x",b="y"}`` with values escaped: the obvious way, to check the collectors by."""
    return "{" + ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs) + "}"


def rendered_text(rendered: Rendered) -> str:
    """A collector's rendered poll as the exposition text /metrics would carry alone."""
    return "".join((item.family.header() + item.samples).decode() for item in rendered.families)


def http_get(
    url: str,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        body: bytes = response.read()
        return body


def wait_for(
    predicate: Callable[[], _T | None],
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
) -> _T:
    """Poll ``predicate`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # the thing we wait for may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


def dying_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that it is sent SIGTERM when the test process dies: a pytest killed by a
    signal or a CI timeout would otherwise leave its simulators and exporters running, holding
    ports and CPU. util-linux's setpriv sets Linux's PR_SET_PDEATHSIG and execs ``argv`` (a
    preexec_fn would run Python between fork and exec, unsafe beside the tests' threads);
    the kernel watches the thread that started it, the test's main thread."""
    return ["setpriv", "--pdeathsig", "TERM", "--", *argv]


class Process:
    """A subprocess whose combined output goes to a file the test can read at any time; it
    ends with the test process (:func:`dying_with_parent`)."""

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            dying_with_parent(args),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited early:\n{self.output()}")
            return regex.search(self.output())

        match: re.Match[str] = wait_for(found, timeout, what=f"output {pattern!r}")
        return match

    def terminate(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


@contextmanager
def running(
    args: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[Process]:
    process = Process(args, log_path, env, cwd)
    try:
        yield process
    finally:
        process.terminate()


def start_simulator(tmp_path: Path, *extra: str, api_key: str, app_key: str) -> tuple[Process, str]:
    process = Process(
        [
            sys.executable,
            "-m",
            "simulator",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            api_key,
            "--app-key",
            app_key,
            *extra,
        ],
        tmp_path / f"simulator-{time.monotonic_ns()}.log",
    )
    match = process.wait_for_output(r"listening on (http://127\.0\.0\.1:\d+)")
    return process, match.group(1)


def start_exporter(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[Process, str]:
    """Start the installed CLI on a free loopback port; return it and its base URL."""
    process = Process(
        [*exporter_command(), "--web.listen-address", "127.0.0.1:0", *args],
        tmp_path / f"exporter-{time.monotonic_ns()}.log",
        env=env,
    )
    match = process.wait_for_output(r"msg=listening .*port=(\d+)")
    return process, f"http://127.0.0.1:{match.group(1)}"
