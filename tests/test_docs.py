"""The documentation: `docs/` builds as a site with no broken link or anchor (`mkdocs build
--strict`, as mkdocs.yml configures its checks), and the README stays a short front door
whose links land on real pages and headings and whose test command is the one CI runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_README_LINES = 300
# [text](target) outside code spans; images and autolinks are not used in these files.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built once per run, into a directory of this run's own."""
    out = tmp_path_factory.mktemp("site")
    proc = mkdocs_build(ROOT, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_docs_build_strictly_without_warnings(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "troubleshooting" / "index.html").is_file()
    assert (site / "reference" / "metrics" / "index.html").is_file()


def test_a_broken_anchor_or_link_fails_the_build(tmp_path: Path) -> None:
    """The checks in mkdocs.yml are on: mkdocs 1.6 only logs a missing anchor at INFO
    unless `validation` makes it a warning, which --strict turns into a failure."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    for broken in ("operations.md#no-such-heading", "no-such-page.md"):
        page = project / "docs" / "troubleshooting.md"
        original = page.read_text()
        page.write_text(original + f"\n[broken]({broken})\n")
        proc = mkdocs_build(project, tmp_path / "site")
        page.write_text(original)
        assert proc.returncode != 0, broken
        assert broken.split("#")[-1] in proc.stdout + proc.stderr


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (mkdocs' toc gives the same for ours)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(markdown: str) -> list[str]:
    body = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return [line.lstrip("#").strip() for line in body.splitlines() if re.match(r"#{1,6} ", line)]


def test_readme_is_short_with_a_table_of_contents() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    contents = text.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    listed = {target for target in LINK.findall(contents)}
    sections = [h for h in headings(text) if h != "Contents"][1:]  # not the title
    assert listed == {f"#{github_slug(h)}" for h in sections}


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md", "benchmarks/README.md"])
def test_links_outside_the_site_land_on_real_pages_and_headings(site: Path, name: str) -> None:
    """GitHub renders these files; every relative link must reach a file, and an anchor
    into docs/ a heading of the built page (an anchor into the file itself, its own)."""
    source = ROOT / name
    text = re.sub(r"```.*?```", "", source.read_text(), flags=re.S)
    checked = 0
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        if not path:
            assert anchor in {github_slug(h) for h in headings(source.read_text())}, target
            checked += 1
            continue
        resolved = (source.parent / path).resolve()
        assert resolved.exists(), f"{name}: {target}"
        if anchor:
            page = resolved.relative_to(ROOT / "docs").with_suffix("")
            html = site / ("" if page.name == "index" else str(page)) / "index.html"
            assert f'id="{anchor}"' in html.read_text(), f"{name}: {target}"
        checked += 1
    assert checked or name == "benchmarks/README.md"


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    """.ci/run ends with the quickstart's second command, verbatim: every test tier."""
    command = (
        "python3.11 -m venv .venv && .venv/bin/pip install '.[test]' "
        "&& .venv/bin/python -m pytest -m ''"
    )
    assert command in README.read_text().splitlines()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command
