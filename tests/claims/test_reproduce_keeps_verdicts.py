"""`skipbench reproduce` never replaces a verdict with "not run yet", and writes only into its own
checkout (or where the user says): a fresh clone's `--no-run`, a foreign folder's README."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import skipbench.claims.reproduce as reproduce
from skipbench.claims.claims import CLAIMS
from skipbench.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A copy of the checkout's results and README, standing in for the project reproduce belongs to."""
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    shutil.copy(REPO / "docs" / "results.md", project / "docs" / "results.md")
    shutil.copy(REPO / "README.md", project / "README.md")
    monkeypatch.setattr(reproduce, "project_root", lambda: project)
    return project


def test_the_checkout_is_found_from_the_package():
    assert reproduce.project_root() == REPO


def test_no_run_in_a_fresh_clone_rewrites_nothing(checkout, tmp_path, monkeypatch, capsys):
    foreign = tmp_path / "elsewhere"
    foreign.mkdir()
    (foreign / "README.md").write_text(f"mine\n{reproduce.README_START}\nmy table\n{reproduce.README_END}\n")
    before = {p: _digest(p) for p in (checkout / "docs" / "results.md", checkout / "README.md", foreign / "README.md")}
    monkeypatch.chdir(foreign)
    assert reproduce.main(["--no-run"]) == 0
    assert {p: _digest(p) for p in before} == before
    assert sorted(p.name for p in foreign.iterdir()) == ["README.md"], "nothing written into the folder it ran in"
    assert "left as it is" in capsys.readouterr().err


def test_unmeasured_claims_keep_their_verdicts(checkout, tmp_path):
    """Written with no claim measured this time (as after a sweep folder was moved): every section and row
    with a verdict stays, none turns into 'not run yet'."""
    out, readme = checkout / "docs" / "results.md", checkout / "README.md"
    sections, rows = reproduce.previous_sections(out), reproduce.previous_rows(out)
    assert sections.keys() == rows.keys() and len(sections) >= 8, "the shipped results hold a verdict per claim"
    new = [c for c in CLAIMS.values() if c.number not in sections]  # claims added since the file was written
    results = [(c, None, tmp_path / c.name, {}) for c in CLAIMS.values()]
    reproduce.write_results(out, tmp_path, results, 1.0)
    text = out.read_text()
    assert text.count("not run yet") == 2 * len(new)  # only a claim never measured: its row and its section
    assert all(s in text for s in sections.values())
    assert reproduce.update_readme(readme, out, [(c, None) for c in CLAIMS.values()])
    assert readme.read_text().count("not run yet") == len(new)
    assert reproduce.previous_rows(readme).keys() == rows.keys()


def test_a_claim_never_measured_says_not_run_yet(tmp_path):
    out = tmp_path / "results.md"
    reproduce.write_results(out, tmp_path, [(c, None, tmp_path, {}) for c in CLAIMS.values()], 1.0)
    assert out.read_text().count("not run yet") == 2 * len(CLAIMS)  # its row and its section


def test_an_installed_package_needs_out(monkeypatch):
    monkeypatch.setattr(reproduce, "project_root", lambda: None)
    with pytest.raises(ConfigError, match="--out"):
        reproduce.main(["--no-run"])
