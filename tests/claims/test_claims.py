"""Claims: the verdict rule, claim names, and (slow) each claim's direction on its cheapest form."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from skipbench.claims import CLAIMS, select_claims
from skipbench.claims.sequential import HOLDS, MIXED, NOT, UNDECIDED
from skipbench.claims.verdict import effect
from skipbench.errors import ConfigError

from conftest import CLI, compose


# ---------------------------------------------------------------- verdict rule
def test_paired_effect_matches_a_hand_computed_t_interval():
    e = effect("b - a", {0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 4.0, 2: 6.0}, ">0")
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2) = 4.3027 -> half-width 4.3027 / sqrt(3)
    assert e.mean == pytest.approx(2.0)
    assert e.ci == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert not e.supports and e.leans  # CI [-0.48, 4.48] includes 0


def test_welch_effect_for_unpaired_lists():
    e = effect("b - a", [0.0, 0.1, 0.2], [1.0, 1.1, 1.2], ">0")
    assert not e.paired and e.mean == pytest.approx(1.0)
    assert e.supports  # equal variances 0.01: df = 4, half-width 2.776 * sqrt(2 * 0.01 / 3) = 0.227
    assert e.ci == pytest.approx(2.776445 * math.sqrt(2 * 0.01 / 3), rel=1e-4)


def test_directions_and_equivalence():
    a = {0: 0.0, 1: 0.0, 2: 0.0}
    assert effect("x", a, {0: -1.0, 1: -1.1, 2: -0.9}, "<0").supports
    assert not effect("x", a, {0: -1.0, 1: -1.1, 2: -0.9}, ">0").leans
    assert effect("x", a, {0: 0.1, 1: -0.1, 2: 0.05}, "~0", margin=0.5).supports
    wide = effect("x", a, {0: 0.4, 1: -0.4, 2: 0.45}, "~0", margin=0.5)
    assert wide.leans and not wide.supports  # mean inside the margin, CI not


def test_a_claims_verdict_is_the_sequential_rule_over_every_setting():
    """Measured.verdict decides all effects of all settings in one Holm family (skipbench/claims/sequential.py)."""
    from skipbench.claims.claims import Measured

    a = {0: 0.0, 1: 0.0, 2: 0.0}
    sure = effect("sure", a, {0: 1.0, 1: 1.1, 2: 0.9}, ">0")
    lean = effect("lean", a, {0: 1.0, 1: -0.5, 2: 0.9}, ">0")
    wrong = effect("wrong", a, {0: -1.0, 1: -1.1, 2: -0.9}, ">0")

    def word(**settings):
        return Measured("q", [], settings, "rule").verdict

    assert word(x=[sure, sure]) == HOLDS
    assert word(x=[sure], y=[sure]) == HOLDS  # one effect per learning rate
    assert word(x=[sure, lean]) == UNDECIDED  # the lean one is open at n = 3
    assert word(x=[sure], y=[wrong]) == MIXED and word(x=[wrong, lean]) == NOT
    m = Measured("q", [], {"x": [sure], "y": [wrong]}, "rule")
    assert m.verdicts == {"x": HOLDS, "y": NOT} and m.decision.n == 3


def test_one_pair_has_no_interval_and_never_supports():
    e = effect("x", {0: 0.0}, {0: 5.0}, ">0")
    assert e.ci is None and not e.supports and e.leans


# ---------------------------------------------------------------- names
def test_eight_claims_each_with_a_preset():
    from skipbench.config import config_dir

    assert [c.number for c in CLAIMS.values()] == list(range(1, len(CLAIMS) + 1))
    for c in CLAIMS.values():
        assert (config_dir() / "experiment" / f"{c.preset}.yaml").is_file()
        assert c.command in ("train", "probe")


def test_select_claims_by_name_number_or_preset():
    assert [c.name for c in select_claims(["crop", "1", "claim_shattered"])] == ["crop", "long_skips", "shattered"]
    assert len(select_claims([])) == len(CLAIMS)
    with pytest.raises(ConfigError, match=r"unknown claim 'bogus'; known: long_skips, degradation"):
        select_claims(["bogus"])


def test_reproduce_unknown_claim_is_one_line_exit_2():
    p = subprocess.run([*CLI, "reproduce", "bogus"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "skipbench reproduce: error: unknown claim 'bogus'; known: " + ", ".join(CLAIMS)]


@pytest.mark.parametrize("preset", [c.preset for c in CLAIMS.values()])
def test_every_preset_composes(preset):
    cfg = compose([f"experiment={preset}"])
    assert cfg.trainer.max_steps >= 1


# ---------------------------------------------------------------- slow: each claim's direction, cheapest form
def _built(overrides: list[str]):
    from skipbench.train.loop import build

    return build(compose(overrides))


def _batch(run, n: int = 16):
    return run.task.make_batch(run.data.train.take(torch.arange(n)), torch.Generator().manual_seed(0))


DEEP_CLASSIFY = ["task=classify", "model.depth=2", "model.width=8", "dataset.train_size=64", "dataset.val_size=16",
                 "trainer.batch_size=16"]


@pytest.mark.slow
def test_claim3_plain_gradients_spread_more_than_residual_at_init():
    from skipbench.claims.probes import grad_profile

    spreads = {}
    for model in ("plain", "resnet"):
        run = _built([*DEEP_CLASSIFY, f"model={model}", "model.blocks_per_level=8", "seed=0"])
        spreads[model] = grad_profile(run.model, run.task, *_batch(run))["spread_decades"]
    assert spreads["plain"] > 1.0 > spreads["resnet"] - 0.5
    assert spreads["plain"] > spreads["resnet"] + 0.5


@pytest.mark.slow
def test_claim6_plain_gradients_shatter_residual_ones_do_not():
    from skipbench.claims.probes import gradient_autocorrelation

    corr = {}
    for model in ("plain", "resnet"):
        run = _built([*DEEP_CLASSIFY, f"model={model}", "model.blocks_per_level=8", "seed=0"])
        inputs = _batch(run)[0]
        corr[model] = gradient_autocorrelation(run.model, inputs[0], calibration=inputs)["neighbour_corr"]
    # BatchNorm with the batch's statistics: the plain net's gradients are white noise (Balduzzi et al.:
    # ~0 with BN), the residual net's stay correlated (they decay only slowly with depth)
    assert corr["plain"] < 0.2 and corr["resnet"] > corr["plain"] + 0.2


@pytest.mark.slow
def test_claim7_concat_costs_more_than_add():
    from skipbench.claims.probes import training_memory

    cost = {}
    for model in ("unet_add", "unet_concat"):
        run = _built([f"model={model}", "model.width=8", "dataset.train_size=64", "dataset.val_size=16"])
        cost[model] = (run.n_params, run.flops, training_memory(run.model, run.task, *_batch(run))["step_bytes"])
    assert all(c > a for a, c in zip(cost["unet_add"], cost["unet_concat"]))


def _sweep(tmp_path, preset: str, overrides: list[str]):
    from skipbench.report.runs import load_runs

    p = subprocess.run([*CLI, "train", "-m", f"experiment={preset}", f"hydra.sweep.dir={tmp_path / preset}", *overrides],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    return load_runs(tmp_path / preset)


@pytest.mark.slow
def test_claim1_long_skips_denoise_better(tmp_path):
    runs = _sweep(tmp_path, "claim_long_skips", ["optimizer.lr=0.003", "seed=0", "trainer.max_steps=60",
                                                 "dataset.train_size=256"])
    m = CLAIMS["long_skips"].measure(runs)
    assert all(e.mean > 1.0 for e in m.effects["lr 0.003"])  # dB, one seed: the direction only


@pytest.mark.slow
def test_claim8_crop_and_padded_score_on_the_same_area(tmp_path):
    runs = _sweep(tmp_path, "claim_crop", ["optimizer.lr=0.003", "seed=0", "trainer.max_steps=40"])
    m = CLAIMS["crop"].measure(runs)
    (e,) = m.effects["lr 0.003"]
    assert "central 24 px" in e.name and abs(e.mean) < 3.0


@pytest.mark.slow
def test_claim2_deeper_plain_net_trains_worse_residual_less_so(tmp_path):
    runs = _sweep(tmp_path, "claim_degradation", ["model=plain,resnet", "optimizer.lr=0.001", "seed=0",
                                                  "trainer.max_steps=100"])
    plain_up, resnet_vs_plain = CLAIMS["degradation"].measure(runs).effects[""][:2]
    assert plain_up.mean > 0.1  # cross-entropy: the 12-conv-per-stage plain net ends higher than the 2-conv one
    assert resnet_vs_plain.mean < 0


@pytest.mark.slow
def test_claim4_responses_stay_near_batchnorm_start_at_this_scale(tmp_path):
    # Claim 4 does not hold here (docs/results.md), and the file says why: after 200 steps at lr 1e-3 every
    # group's response std is still within 0.1 of 1.0, where BatchNorm starts. This checks that reason.
    runs = _sweep(tmp_path, "claim_branch_response", ["optimizer.lr=0.001"])
    m = CLAIMS["branch_response"].measure(runs)
    assert len(m.rows) == 4 and all(len(r.values) == 3 for r in m.rows)
    assert all(abs(v - 1.0) < 0.1 for r in m.rows for v in r.values.values())
    assert "moved the responses little" in m.note


@pytest.mark.slow
def test_claim5_long_only_unet_spreads_its_updates_more(tmp_path):
    # At this scale the effect only leans the claimed way (docs/results.md): its mean over the preset's seeds.
    runs = _sweep(tmp_path, "claim_update_ratio", ["optimizer.lr=0.001"])
    (spread,) = CLAIMS["update_ratio"].measure(runs).effects[""]
    assert spread.mean > 0


def test_per_lr_measures_each_learning_rate_and_the_weakest_verdict_wins():
    """A one-setting measure over an lr grid: rows and effects per lr; the lr where the effect fails decides."""
    from types import SimpleNamespace

    from skipbench.claims.claims import Measured, Row, per_lr
    from skipbench.claims.verdict import effect

    runs = [SimpleNamespace(config={"optimizer.lr": lr, "seed": s, "model.name": m}, status="completed")
            for lr in (0.001, 0.003) for s in range(3) for m in ("a", "b")]
    gap = {0.001: 1.0, 0.003: -1.0}  # b beats a by 1 at the low lr only

    @per_lr
    def measure(rs):
        lr = rs[0].config["optimizer.lr"]
        assert all(r.config["optimizer.lr"] == lr for r in rs)
        a = {r.config["seed"]: 0.1 * r.config["seed"] for r in rs if r.config["model.name"] == "a"}
        b = {s: v + gap[lr] + 0.01 * s for s, v in a.items()}
        return Measured("q", [Row("a", a), Row("b", b)], {"": [effect("b − a", a, b, ">0")]}, "rule",
                        note="b lags" if gap[lr] < 0 else "")

    m = measure(runs)
    assert m.note == "At lr 0.003: b lags."  # a note is about the lr it was measured at
    assert [r.label for r in m.rows] == ["a, lr 0.001", "b, lr 0.001", "a, lr 0.003", "b, lr 0.003"]
    assert m.verdicts == {"lr 0.001": "holds", "lr 0.003": "does not hold"}
    assert m.verdict == "mixed"  # decided for at one lr, against at the other
    assert m.effects["lr 0.003"][0].name == "lr 0.003: b − a"
    single = measure([r for r in runs if r.config["optimizer.lr"] == 0.001])
    assert single.verdict == "holds" and [r.label for r in single.rows] == ["a", "b"]


def test_verdict_changes_name_each_verdict_that_differs_from_the_file_replaced(tmp_path):
    from skipbench.claims.claims import Measured, Row
    from skipbench.claims.reproduce import verdict_changes, verdict_table

    a, b = {0: 0.0, 1: 0.1, 2: 0.2}, {0: 1.0, 1: 1.2, 2: 1.1}
    holds = Measured("q", [Row("a", a)], {"": [effect("b − a", a, b, ">0")]}, "rule")
    fails = Measured("q", [Row("a", a)], {"": [effect("a − b", b, a, ">0")]}, "rule")
    c1, c2 = CLAIMS["long_skips"], CLAIMS["degradation"]
    out = tmp_path / "results.md"
    assert verdict_changes(out, [(c1, holds)]) == []  # no earlier file: nothing to compare
    out.write_text("# R\n\n" + verdict_table([(c1, holds), (c2, holds)]) + "\n")
    assert verdict_changes(out, [(c1, holds), (c2, holds)])[0].startswith("No verdict changed")
    assert verdict_changes(out, [(c1, holds), (c2, fails)])[0] == (
        "Verdicts changed since the previous `docs/results.md`: claim 2 (degradation): holds → does not hold.")


def test_claim8_central_psnr_is_kept_with_its_checkpoint_and_measured_again_when_that_changes(tmp_path, monkeypatch):
    """``reproduce`` re-runs with every sweep finished read claim 8's measure from the run folder instead of
    rebuilding 36 models; a different checkpoint or area, or a damaged file, is measured again."""
    from types import SimpleNamespace

    import skipbench.claims.claims as claims
    import skipbench.claims.probes as probes
    from skipbench.run_folder import CHECKPOINT, CROP_PSNR

    calls: list[int] = []

    def fake_psnr(model, size):
        calls.append(size)
        return 20.0 + len(calls)

    monkeypatch.setattr(probes, "val_psnr_on", fake_psnr)
    monkeypatch.setattr(claims, "trained", lambda run: "model")
    run = SimpleNamespace(path=tmp_path)
    (tmp_path / CHECKPOINT).write_bytes(b"weights")
    assert claims.central_val_psnr(run, 24) == 21.0 and (tmp_path / CROP_PSNR).is_file()
    assert claims.central_val_psnr(run, 24) == 21.0 and calls == [24]  # kept: not measured again
    assert claims.central_val_psnr(run, 20) == 22.0 and calls == [24, 20]  # another area
    (tmp_path / CHECKPOINT).write_bytes(b"other weights")  # the run was trained further
    assert claims.central_val_psnr(run, 20) == 23.0
    (tmp_path / CROP_PSNR).write_text("{not json")
    assert claims.central_val_psnr(run, 20) == 24.0 and len(calls) == 4

    def read_only(path, data):
        raise PermissionError(f"{path}: read-only")

    monkeypatch.setattr(claims, "write_json", read_only)  # a read-only sweep: the value, nothing kept
    assert claims.central_val_psnr(run, 16) == 25.0


def test_claim4_reads_each_runs_kept_response_std_and_measures_a_run_without_one(tmp_path, monkeypatch):
    """The other measure on trained checkpoints (60 models per sweep): kept per run like claim 8's, so the
    measure reads the files; the one run without a file is the only model rebuilt."""
    import json

    import skipbench.claims.claims as claims
    from skipbench.report.runs import Run
    from skipbench.run_folder import CHECKPOINT, COMPLETED, RESPONSE_STD

    runs, rebuilt = [], []
    for model in ("plain", "resnet"):
        for seed in range(3):
            path = tmp_path / f"{model}_{seed}"
            path.mkdir()
            (path / CHECKPOINT).write_bytes(b"w")
            runs.append(Run(path, path.name, {"model.name": model, "model.blocks_per_level": 2, "optimizer.lr": 0.001,
                                              "seed": seed, "trainer.max_steps": 200}, [], {"status": COMPLETED}))
    for run in runs[:-1]:  # as an earlier measure left them: plain 1.0, resnet 0.5 (+ a little per seed)
        st = (run.path / CHECKPOINT).stat()
        value = (1.0 if run.config["model.name"] == "plain" else 0.5) + 0.01 * run.config["seed"]
        (run.path / RESPONSE_STD).write_text(json.dumps(
            {"probe_images": claims.PROBE_IMAGES, "checkpoint_bytes": st.st_size,
             "checkpoint_mtime_ns": st.st_mtime_ns, "value": value}))

    def rebuild(run):
        rebuilt.append(run.path.name)
        raise AssertionError("rebuilt")

    monkeypatch.setattr(claims, "trained", rebuild)
    with pytest.raises(AssertionError, match="rebuilt"):
        claims.measure_branch_response(runs)
    assert rebuilt == ["resnet_2"]  # every kept value read, only the run without one rebuilt
