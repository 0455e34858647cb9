"""Claims 9-13 (issues 21 and 22): each measure on constructed runs, a flipped outcome flips the verdict, the
presets compose and their swept knobs reach the built model, the registry and configs/experiment agree, and
reproduce runs a claim's analysis once per run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from skipbench.claims import CLAIMS
from skipbench.claims.claims import ROUGH, SMOOTH, TARGET_LOSS
from skipbench.claims.sequential import HOLDS, NOT
from skipbench.config import config_dir
from skipbench.run_folder import COMPLETED, DIVERGED, LANDSCAPE, LESION

from conftest import compose

NEW = ("lesion", "landscape", "norm_free", "shortcuts", "deep_mlp")
JITTER = (0.0, 0.01, -0.01)  # per seed: the paired differences vary a little, so the CIs are finite and narrow


def fake_run(tmp_path: Path, config: dict, status: str = COMPLETED, curves: dict | None = None,
             files: dict | None = None, metrics: dict | None = None) -> SimpleNamespace:
    """A Run as the measures read it: flat config, status, curves by tag, JSON files in its folder."""
    path = tmp_path / "_".join(f"{v}" for v in config.values())
    path.mkdir(parents=True, exist_ok=True)
    for name, content in (files or {}).items():
        (path / name).write_text(json.dumps(content))
    curves = curves or {}
    return SimpleNamespace(config={"trainer.max_steps": 300, "trainer.log_every": 10, **config}, status=status, path=path,
                           name=path.name, metrics=metrics or {}, curve=lambda tag: curves.get(tag, []),
                           scalars=lambda: curves)


def loss_curve(end: float, start: float = 2.3, steps: int = 300, every: int = 10) -> list[tuple[int, float]]:
    """A training-loss curve falling linearly from ``start`` to ``end`` over its first half, then flat at ``end``."""
    n = steps // every
    return [(every * (i + 1), start + (end - start) * min(1.0, 2 * (i + 1) / n)) for i in range(n)]


# ---------------------------------------------------------------- claim 9: lesion
def lesion_runs(tmp_path, drop: dict[str, float], smooth: dict[str, float]):
    return [fake_run(tmp_path, {"model.name": m, "seed": s},
                     files={LESION: {"single_drop": drop[m] + JITTER[s], "smoothness": smooth[m] + JITTER[s],
                                     "not_deletable": [{"block": "enc1.0"}] if m == "plain" else []}})
            for m in ("plain", "resnet") for s in range(3)]


def test_claim9_residual_loses_less_to_one_deletion_and_degrades_smoothly(tmp_path):
    m = CLAIMS["lesion"].measure(lesion_runs(tmp_path, {"plain": 0.6, "resnet": 0.05}, {"plain": 1.0, "resnet": 0.2}))
    gap, smooth = m.effects[""]
    assert gap.mean == pytest.approx(0.05 - 0.6) and gap.n == 3
    assert smooth.mean == pytest.approx(0.2 - SMOOTH)
    assert m.verdict == HOLDS
    assert "1 of its blocks" in m.note  # the plain net's undeletable block is named


def test_claim9_flipped_outcome_does_not_hold(tmp_path):
    m = CLAIMS["lesion"].measure(lesion_runs(tmp_path, {"plain": 0.05, "resnet": 0.6}, {"plain": 0.2, "resnet": 0.9}))
    assert m.verdict == NOT


# ---------------------------------------------------------------- claim 10: landscape
def landscape_runs(tmp_path, rough: dict[str, float]):
    return [fake_run(tmp_path, {"model.name": m, "seed": s},
                     files={LANDSCAPE: {"nonconvex_fraction": rough[m] + JITTER[s], "hessian": {"ratio": 0.1}}})
            for m in ("plain", "resnet", "unet_concat") for s in range(3)]


def test_claim10_skips_lower_the_nonconvex_fraction_of_a_rough_plain_surface(tmp_path):
    m = CLAIMS["landscape"].measure(landscape_runs(tmp_path, {"plain": 0.3, "resnet": 0.02, "unet_concat": 0.05}))
    rough, short, long = m.effects[""]
    assert rough.mean == pytest.approx(0.3 - ROUGH)
    assert short.mean == pytest.approx(0.02 - 0.3) and long.mean == pytest.approx(0.05 - 0.3)
    assert m.verdict == HOLDS
    assert "L[i−1] + L[i+1] − 2 L[i] < 0" in m.rule  # the roughness measure is stated with the verdict
    assert "plain 0.1" in m.note  # the Hessian ratio is reported, not decided


def test_claim10_flipped_outcome_does_not_hold(tmp_path):
    m = CLAIMS["landscape"].measure(landscape_runs(tmp_path, {"plain": 0.02, "resnet": 0.3, "unet_concat": 0.2}))
    assert m.verdict == NOT


# ---------------------------------------------------------------- claim 11: without normalisation
NORM_FREE = ("resnet_nonorm", "rezero_resnet", "skipinit_resnet", "fixup_resnet", "resnet")


def norm_free_runs(tmp_path, reach: dict[str, int | None]):
    """``reach[model]``: the step the curve first gets below the target (None: never; the run diverges)."""
    runs = []
    for m in NORM_FREE:
        for s in range(3):
            at = reach[m]
            if at is None:
                curve, status = [(10, 2.3), (20, 5.0), (30, math.nan)], DIVERGED
            else:
                at += 10 * s  # seeds differ by a window
                curve, status = [(k, TARGET_LOSS + 1.0 if k < at else TARGET_LOSS - 0.1) for k in range(10, 310, 10)], COMPLETED
            runs.append(fake_run(tmp_path, {"model.name": m, "seed": s}, status, {"loss/train": curve}))
    return runs


def test_claim11_zero_init_scales_train_without_norm_and_rezero_beats_batchnorm(tmp_path):
    runs = norm_free_runs(tmp_path, {"resnet_nonorm": None, "rezero_resnet": 50, "skipinit_resnet": 80,
                                     "fixup_resnet": 120, "resnet": 150})
    m = CLAIMS["norm_free"].measure(runs)
    assert m.rows[0].values == {0: 310.0, 1: 310.0, 2: 310.0}  # diverged: censored at max_steps + log_every
    rezero, skipinit, fixup, vs_bn = m.effects[""]
    assert rezero.mean == pytest.approx(60 - 310) and fixup.mean == pytest.approx(130 - 310)
    assert vs_bn.mean == pytest.approx(50 - 150)
    assert m.verdict == HOLDS
    assert "3 of 3 runs never reached the target (3 diverged)" in m.note


def test_claim11_flipped_outcome_does_not_hold(tmp_path):
    runs = norm_free_runs(tmp_path, {"resnet_nonorm": 40, "rezero_resnet": None, "skipinit_resnet": None,
                                     "fixup_resnet": None, "resnet": 30})
    assert CLAIMS["norm_free"].measure(runs).verdict == NOT


# ---------------------------------------------------------------- claim 12: shortcut variants
SHORTCUTS = ("identity", "scaled", "gated", "shortcut_gated", "conv1x1", "dropout")


def shortcut_runs(tmp_path, end: dict[str, float]):
    return [fake_run(tmp_path, {"model.name": "resnet", "model.shortcut": k, "seed": s},
                     curves={"loss/train": loss_curve(end[k] + JITTER[s])}) for k in SHORTCUTS for s in range(3)]


def test_claim12_every_other_shortcut_trains_worse_than_identity(tmp_path):
    end = {"identity": 0.1, "scaled": 0.4, "gated": 0.9, "shortcut_gated": 0.5, "conv1x1": 0.3, "dropout": 1.2}
    m = CLAIMS["shortcuts"].measure(shortcut_runs(tmp_path, end))
    trains, *worse = m.effects[""]
    assert trains.mean < 0  # the identity net reaches the target loss
    for e, k in zip(worse, SHORTCUTS[1:]):
        assert k in e.name and e.mean == pytest.approx(end[k] - end["identity"], abs=0.02)
    assert m.verdict == HOLDS


def test_claim12_flipped_outcome_does_not_hold(tmp_path):
    end = {"identity": 1.5, "scaled": 0.2, "gated": 0.3, "shortcut_gated": 0.2, "conv1x1": 0.1, "dropout": 0.4}
    assert CLAIMS["shortcuts"].measure(shortcut_runs(tmp_path, end)).verdict == NOT


# ---------------------------------------------------------------- claim 13: very deep fully connected nets
def mlp_runs(tmp_path, best: dict[tuple[str, int, float], float]):
    """``best[(model, layers, gate bias)]``: the run's lowest training loss."""
    return [fake_run(tmp_path, {"model.name": m, "model.num_layers": n, "model.highway_gate_bias": b, "seed": s},
                     curves={"loss/train": loss_curve(v + JITTER[s])})
            for (m, n, b), v in best.items() for s in range(3)]


def mlp_best(plain_deep: float, skip_deep: float, highway_weak: float) -> dict:
    out = {}
    for b in (-1.0, -3.0):
        out |= {("mlp_plain", 10, b): 0.2, ("mlp_plain", 100, b): plain_deep,
                ("mlp_residual", 10, b): 0.2, ("mlp_residual", 100, b): skip_deep,
                ("mlp_highway", 10, b): 0.2, ("mlp_highway", 100, b): skip_deep if b == -3.0 else highway_weak}
    return out


def test_claim13_plain_mlp_degrades_with_depth_skips_do_not(tmp_path):
    m = CLAIMS["deep_mlp"].measure(mlp_runs(tmp_path, mlp_best(plain_deep=1.5, skip_deep=0.2, highway_weak=1.0)))
    plain, residual, highway = m.effects[""]
    assert plain.mean == pytest.approx(1.3, abs=0.02)  # best: the flat end of each curve
    assert residual.mean == pytest.approx(-1.3, abs=0.02)
    assert "gate bias -3" in highway.name and highway.mean == pytest.approx(-1.3, abs=0.02)
    assert m.verdict == HOLDS
    assert "mlp_highway, gate bias -1, 100 layers" in [r.label for r in m.rows]
    assert "at bias -1: 0.8" in m.note  # the gate-bias dependence is shown


def test_claim13_flipped_outcome_does_not_hold(tmp_path):
    m = CLAIMS["deep_mlp"].measure(mlp_runs(tmp_path, mlp_best(plain_deep=0.1, skip_deep=1.5, highway_weak=1.5)))
    assert m.verdict == NOT


# ---------------------------------------------------------------- presets and registry
def test_every_claim_preset_file_has_a_claim_and_numbers_run_on():
    files = {p.stem for p in (config_dir() / "experiment").glob("claim_*.yaml")}
    assert files == {c.preset for c in CLAIMS.values()}
    assert [c.number for c in CLAIMS.values()] == list(range(1, len(CLAIMS) + 1))
    assert {c.analyze for c in CLAIMS.values()} == {None, "lesion", "landscape"}


def sweep_params(preset: str) -> dict[str, list[str]]:
    raw = yaml.safe_load((config_dir() / "experiment" / f"{preset}.yaml").read_text())
    return {k: str(v).split(",") for k, v in raw["hydra"]["sweeper"]["params"].items()}


def _model_fingerprint(cfg) -> tuple:
    """Names, shapes and sums of the initial weights of the model ``cfg`` builds (no data loaded), its output on a
    fixed input and its gradients."""
    from skipbench import seeds
    from skipbench.config import instantiate_checked

    classify = "classif" in str(cfg.task._target_).lower()
    with seeds.seeded(0, "init"):
        model = instantiate_checked(cfg.model, in_channels=1, out_channels=10 if classify else 1,
                                    head="classes" if classify else "pixels")
    weights = tuple((k, tuple(v.shape), round(float(v.float().sum()), 4)) for k, v in sorted(model.state_dict().items())
                    if isinstance(v, torch.Tensor))
    # and what it computes: two variants may share their weights at init (ReZero and SkipInit: alpha = 0) and differ
    # in the forward (ReZero has no activation after the sum), which the output and the gradients show
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    out = model(x)
    out.square().mean().backward()
    grads = tuple(round(float(p.grad.abs().sum()), 6) for p in model.parameters() if p.grad is not None)
    return weights, round(float(out.detach().sum()), 5), grads


@pytest.mark.parametrize("name", NEW)
def test_new_presets_have_three_seeds_and_their_swept_model_knobs_reach_the_model(name):
    claim = CLAIMS[name]
    params = sweep_params(claim.preset)
    assert params.pop("seed") == ["0", "1", "2"]
    base = [f"experiment={claim.preset}", "seed=0"]
    if name == "deep_mlp":
        base.append("model=mlp_highway")  # the gate bias is a highway knob: the other MLPs ignore it
    for key, values in params.items():
        prints = set()
        for v in values:
            cfg = compose([*base, f"{key}={v}"])
            assert str(cfg.model.name if key == "model" else _select(cfg, key)) == v
            prints.add(_model_fingerprint(cfg))
        assert len(prints) == len(values), f"{claim.preset}: {key} values {values} build the same model"


def _select(cfg, key: str):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key)
    return f"{value}" if not isinstance(value, float) else f"{value:.1f}"


# ---------------------------------------------------------------- reproduce: the analysis after the sweep
def test_reproduce_analyses_each_run_once_and_adds_the_time_to_the_sweep(tmp_path, monkeypatch):
    from skipbench.analyze import run as analyze_run
    from skipbench.claims.reproduce import DONE, analyze_sweep, measure
    from skipbench.run_folder import CHECKPOINT, CONFIG

    sweep = tmp_path / "sweep"
    for i in range(3):
        job = sweep / f"job{i}"
        (job / CONFIG).parent.mkdir(parents=True)
        (job / CONFIG).write_text("seed: 0\n")
        torch.save({}, job / CHECKPOINT)
    (sweep / "job1" / LESION).write_text("{}")  # analysed before: reused
    (sweep / DONE).write_text(json.dumps({"wall_s": 100.0}))
    seen = []

    def fake(path, cfg):
        seen.append((path.name, cfg.lesion.draws, cfg.progress))
        (path / LESION).write_text("{}")
        return {}

    monkeypatch.setitem(analyze_run.ANALYSES, "lesion", fake)
    claim = CLAIMS["lesion"]
    measure(claim, sweep)  # measuring a claim with an analysis runs it first
    assert seen == [("job0", 3, False), ("job2", 3, False)]  # the claim's knobs (lesion.draws=3 progress=false)
    done = json.loads((sweep / DONE).read_text())
    assert done["wall_s"] >= 100.0 and "analyze_s" in done
    assert analyze_sweep(claim, sweep) == 0  # every run has its lesion.json now
    assert analyze_sweep(CLAIMS["shortcuts"], sweep) == 0  # a claim without an analysis runs none
