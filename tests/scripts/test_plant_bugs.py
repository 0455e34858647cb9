"""``scripts/plant_bugs.py`` plants each bug of docs/testing.md's catalogue by a source edit; when the code
moves, an edit stops matching and the script reports "NOT PLANTED" (three had gone stale unnoticed). This
keeps every edit applicable to today's source, and the catalogue and the docs' table the same length."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("plant_bugs", ROOT / "scripts" / "plant_bugs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_planted_bug_still_applies_to_the_source_once():
    bugs = _script().BUGS
    stale = []
    for i, (what, rel, *edits) in enumerate(bugs):
        planted = (ROOT / rel).read_text()
        for old, new in zip(edits[::2], edits[1::2]):
            if planted.count(old) != 1:
                stale.append(f"{i} {what}: {old[:50]!r} found {planted.count(old)} times in {rel}")
                break
            planted = planted.replace(old, new)
        else:
            assert planted != (ROOT / rel).read_text(), what
    assert not stale, "\n".join(stale)


def test_the_catalogue_in_docs_lists_every_planted_bug():
    rows = re.findall(r"^\| (\d+) \| ", (ROOT / "docs" / "testing.md").read_text(), flags=re.M)
    assert [int(r) for r in rows[:len(_script().BUGS)]] == list(range(len(_script().BUGS)))
