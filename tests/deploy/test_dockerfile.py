"""The container image recipe: hadolint-clean, and shaped as the issue asks."""

from __future__ import annotations

import re

from exporter.cli import DEFAULT_LISTEN_ADDRESS
from tests.deploy.deploy_support import REPO, describe, run, tool

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, args = stripped.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def test_hadolint_reports_no_errors() -> None:
    """hadolint at the error threshold, as CI runs it."""
    proc = run([tool("hadolint"), "--no-color", "--failure-threshold", "error", str(DOCKERFILE)])
    assert proc.returncode == 0, describe(proc)


def test_build_is_multi_stage_on_slim_python_311() -> None:
    steps = instructions()
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    base = next(args for keyword, args in steps if keyword == "ARG" and "PYTHON_IMAGE" in args)
    assert re.search(r"python:3\.11-slim", base), base


def test_runtime_stage_installs_only_the_built_wheels() -> None:
    runs = " ".join(args for keyword, args in final_stage() if keyword == "RUN")
    assert "--no-index" in runs and "/wheels" in runs
    assert "apt-get" not in runs, "no build tools in the final image"
    copies = [args for keyword, args in final_stage() if keyword == "COPY"]
    assert not any("--from=build" in args for args in copies), (
        "wheels are bind-mounted, not copied into a layer"
    )


def test_runs_as_numeric_non_root_user() -> None:
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users, "USER missing in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]


def test_exposes_default_port_and_entrypoints_the_console_script() -> None:
    final = final_stage()
    assert ("EXPOSE", "10173") in final
    entrypoints = [args for keyword, args in final if keyword == "ENTRYPOINT"]
    assert entrypoints, "ENTRYPOINT missing"
    assert entrypoints[-1].startswith('["datadog-cnm-exporter"'), "exec form, console script"
    # --web.listen-address adds an address each time it is given: set in the entrypoint, it
    # would turn an address given to `docker run` into a second one instead of a replacement.
    # The image relies on the CLI's default, all interfaces on the exposed port.
    assert "--web.listen-address" not in entrypoints[-1]
    assert DEFAULT_LISTEN_ADDRESS == ":10173"
    assert not any(keyword == "CMD" for keyword, _ in final), "flags append to ENTRYPOINT"


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert next(line for line in lines if not line.startswith("#")) == "*"
    for needed in ("!pyproject.toml", "!exporter/", "!simulator/", "!README.md"):
        assert needed in lines
