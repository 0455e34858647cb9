"""The README is a short front page; the rest is a MkDocs site that builds with warnings as errors, and
every command in them that shows its output is run here and must print that output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skipbench.claims.reproduce import README_END, README_START
from skipbench.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def test_readme_is_a_front_page_with_the_two_commands_and_the_verdicts():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert 'pip install torch==2.13.0 -e ".[dev]"' in text and "python -m pytest" in text
    assert text.index(README_START) < text.index(README_END)  # skipbench reproduce rewrites this table
    for link in re.findall(r"\]\(((?:docs|examples)/[^)#]+)", text):
        assert (ROOT / link).exists(), link


def _nav_files(nav) -> list[str]:
    out = []
    for item in nav:
        for value in (item.values() if isinstance(item, dict) else [item]):
            out += _nav_files(value) if isinstance(value, list) else [value]
    return out


def test_every_docs_page_is_in_the_site_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))
    nav = set(_nav_files(config["nav"]))
    pages = {p.name for p in DOCS.glob("*.md")} | {"index.md"}
    assert pages == nav, f"not in nav: {pages - nav}; missing: {nav - pages}"


def shown_commands() -> list[tuple[str, str, list[str]]]:
    """``(page, command, expected output lines)`` for every ``$ skipbench ...`` line in a code block."""
    found = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for block in re.findall(r"```[^\n]*\n(.*?)```", page.read_text(), re.S):
            lines = block.splitlines()
            for i, line in enumerate(lines):
                if line.startswith("$ skipbench "):
                    out = []
                    for nxt in lines[i + 1:]:
                        if nxt.startswith("$ "):
                            break
                        out.append(nxt)
                    found.append((page.name, line[2:], out))
    return found


@pytest.mark.parametrize("page, command, expected", shown_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_commands_print_what_the_docs_show(page, command, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    cli_main(command.split()[1:])
    printed = capsys.readouterr()
    output = (printed.out + printed.err).splitlines()
    for line in expected:
        assert line in output, f"{page}: `{command}` did not print {line!r}; it printed {output}"


def test_the_docs_show_commands_at_all():
    assert len(shown_commands()) >= 4


@pytest.mark.slow  # ~10 s: mkdocs-material builds the whole site
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("material")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                                         "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Measure what skip connections do" in index and 'href="python_api/' in index
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()
