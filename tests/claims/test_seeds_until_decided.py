"""`skipbench reproduce` adds seeds until each claim is decided (skipbench/claims/reproduce.py: grow),
within the seeds and wall-clock budget of configs/reproduce/default.yaml (skipbench/claims/budget.py).

The sweeps are stood in for by a fake ``run_sweep`` that records what it was asked to run and writes
the ``.done`` a real sweep would; each fake claim's per-seed values come from a seeded generator, so
the seeds a claim needs are fixed by its true effect and noise."""

from __future__ import annotations

import argparse
import random

import pytest

import skipbench.claims.reproduce as reproduce
from skipbench.claims.budget import load_budget
from skipbench.claims.claims import Claim, Measured, Row
from skipbench.claims.sequential import Schedule
from skipbench.claims.verdict import effect
from skipbench.errors import ConfigError
from skipbench.run_folder import write_json

from conftest import run_cli

OPTS = argparse.Namespace(rerun=False, no_run=False)


def _claim(name: str, number: int, true_effect: float, noise: float = 1.0) -> Claim:
    """A claim whose one effect (B - A, claimed > 0) has per-seed values effect + N(0, noise)."""
    def measure(runs) -> Measured:
        folder = reproduce.sweep_dir(claim, ROOT[0])
        n = reproduce.seeds_done(claim, folder)
        rng = random.Random(number)  # seed s gets the same value whatever n is: seeds are added, not redrawn
        diffs = [true_effect + rng.gauss(0.0, noise) for _ in range(n)]
        a = {s: 0.0 for s in range(n)}
        b = {s: diffs[s] for s in range(n)}
        return Measured("q", [Row("a", a), Row("b", b)], {"": [effect("b − a", a, b, ">0")]}, "rule")

    claim = Claim(name, number, "a claim", "test", "claim_long_skips", "train", measure)
    return claim


ROOT = [None]


@pytest.fixture
def fake_sweeps(tmp_path, monkeypatch):
    """``run_sweep`` recorded as ``(claim, seeds)`` calls; each seed costs ``cost_s[claim]`` of wall time."""
    ROOT[0] = tmp_path
    calls: list[tuple[str, int]] = []
    cost_s: dict[str, float] = {}
    monkeypatch.setattr(reproduce, "_MEASURED", {})

    def run_sweep(claim, folder, seeds):
        calls.append((claim.name, seeds))
        (folder / "job" / ".hydra").mkdir(parents=True, exist_ok=True)
        (folder / "job" / ".hydra" / "config.yaml").write_text("seed: 0\n")  # a run folder for load_runs
        write_json(folder / reproduce.DONE, {"seeds": seeds, "wall_s": cost_s.get(claim.name, 1.0) * seeds})
        return 0.0

    monkeypatch.setattr(reproduce, "run_sweep", run_sweep)
    monkeypatch.setattr(reproduce, "sweep_dir", lambda claim, root: root / claim.name)
    return calls, cost_s


def _grow(claims, budget_min: float = 60.0, max_seeds: int = 9):
    budget = load_budget(None, max_seeds, budget_min)
    reproduce.grow(claims, ROOT[0], budget, OPTS, reproduce.time.perf_counter())
    return [reproduce.measure(c, reproduce.sweep_dir(c, ROOT[0]), budget.schedule).decision for c in claims]


def test_a_large_effect_is_decided_at_the_first_look(fake_sweeps):
    calls, _ = fake_sweeps
    (d,) = _grow([_claim("big", 1, true_effect=10.0, noise=0.5)])
    assert calls == [("big", 3)] and d.word == "holds" and d.n == 3


def test_a_moderate_effect_gets_seeds_until_decided_and_no_more(fake_sweeps):
    calls, _ = fake_sweeps
    (d,) = _grow([_claim("moderate", 2, true_effect=2.5, noise=1.0)])
    seeds = [n for _, n in calls]
    assert seeds[0] == 3 and seeds == sorted(seeds) and all(b - a == 3 for a, b in zip(seeds, seeds[1:]))
    assert d.word == "holds" and d.n == seeds[-1] > 3, (calls, d.text)


def test_a_null_effect_grows_to_the_last_look_and_says_undecided_with_what_it_could_detect(fake_sweeps):
    calls, _ = fake_sweeps
    (d,) = _grow([_claim("null", 3, true_effect=0.0, noise=1.0)])
    assert calls == [("null", 3), ("null", 6), ("null", 9)]
    assert d.word == "undecided" and d.n == 9
    assert d.text.startswith("undecided at n = 9 (smallest detectable: ") and "b − a" in d.text


def test_no_step_is_started_that_would_end_past_the_wall_clock_budget(fake_sweeps, capsys):
    calls, cost_s = fake_sweeps
    cost_s["slow"] = 5 * 60.0  # 5 min a seed: 3 more seeds take 15 min, past a 10-min budget
    (d,) = _grow([_claim("slow", 4, true_effect=0.0)], budget_min=10.0)
    assert calls == [("slow", 3)] and d.word == "undecided" and d.n == 3
    assert "not grown: 3 more seeds would take about 15.0 min" in capsys.readouterr().err


def test_claims_grow_round_by_round_so_one_claim_cannot_spend_the_others_budget(fake_sweeps):
    calls, _ = fake_sweeps
    _grow([_claim("null_a", 5, 0.0), _claim("null_b", 6, 0.0)])
    assert calls == [("null_a", 3), ("null_b", 3), ("null_a", 6), ("null_b", 6), ("null_a", 9), ("null_b", 9)]


def test_a_rerun_with_everything_finished_runs_nothing(fake_sweeps):
    calls, _ = fake_sweeps
    claims = [_claim("big", 1, 10.0, 0.5), _claim("null", 3, 0.0)]
    first = _grow(claims)
    ran = list(calls)
    reproduce._MEASURED.clear()
    again = _grow(claims)
    assert calls == ran, "finished seeds are reused, decided and exhausted claims are not grown"
    assert [d.text for d in again] == [d.text for d in first]


def test_max_seeds_from_the_command_line_bounds_the_growth(fake_sweeps):
    calls, _ = fake_sweeps
    (d,) = _grow([_claim("null", 3, 0.0)], max_seeds=6)
    assert calls == [("null", 3), ("null", 6)] and d.n == 6


def test_the_shipped_budget_is_the_documented_one():
    b = load_budget()
    assert b.schedule == Schedule(start=3, step=3, max_seeds=9, alpha=0.05, spending="pocock") and b.minutes == 60


@pytest.mark.parametrize("text, words", [
    ("seeds: {start: 3, step: 3, max: 9}\nalpha: 0.05\nbudget: 60\n", "unknown key 'budget'; known: seeds.start"),
    ("seeds: {start: 3, stride: 2}\n", "unknown key 'seeds.stride'"),
    ("seeds: {start: 1}\n", "seeds.start=1: must be an integer >= 2"),
    ("seeds: {start: 3, max: 2}\n", "seeds.max=2: must be an integer >= seeds.start (3)"),
    ("alpha: 1.5\n", "alpha=1.5: must lie strictly between 0 and 1"),
    ("spending: bonferroni\n", "spending='bonferroni': allowed: pocock, obrien_fleming"),
    ("budget_min: 0\n", "budget_min=0: must be a number of minutes > 0"),
    ("seeds: three\n", "seeds='three': must be a mapping"),
])
def test_a_bad_budget_is_one_line_naming_the_key(tmp_path, text, words):
    path = tmp_path / "budget.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as ex:
        load_budget(path)
    assert words in str(ex.value) and "\n" not in str(ex.value)


def test_reproduce_refuses_a_bad_budget_before_anything_runs(tmp_path):
    res = run_cli(["reproduce", "long_skips", "--budget-min", "-5", "--root", str(tmp_path / "claims"),
                   "--out", str(tmp_path / "results.md")], cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "skipbench reproduce: error: --budget-min=-5.0: must be a number of minutes > 0"], res.stderr
    assert not (tmp_path / "claims").exists()
