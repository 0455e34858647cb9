"""Sweepers that optimise: the task function returns the headline metric, failed trials count as failed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

import skipbench.config as sbconfig
from skipbench.commands.job import objective

from conftest import TINY, describe, read_metrics, run_cli

OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
SHORT = ["trainer.max_steps=3", "trainer.eval_every=3", "trainer.log_every=1", "trainer.num_threads=1"]


def test_objective_is_the_final_headline_metric():
    summary = {"status": "completed", "final_val_miou": 0.4, "best_val_miou": 0.5, "final_val_dice": 0.7}
    assert objective(summary, OPTUNA) == 0.4
    assert objective(summary) == 0.4


@pytest.mark.parametrize("summary", [None, {"status": "diverged", "final_val_psnr": float("nan"), "best_val_psnr": 12.0},
                                     {"status": "completed", "final_val_psnr": float("inf"), "best_val_psnr": 3.0}])
def test_failed_runs_return_each_sweepers_failed_trial(summary):
    assert objective(summary, OPTUNA) is None  # Optuna: not float-castable -> TrialState.FAIL, the study goes on
    assert math.isnan(objective(summary, "hydra_plugins.hydra_nevergrad_sweeper.NevergradSweeper"))


def _trials(sweep):
    return [read_metrics(d) for d in sorted(sweep.iterdir()) if (d / "metrics.json").is_file()]


@pytest.mark.long
def test_optuna_sweep_through_the_cli_reports_the_best_value(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    res = run_cli(["train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.direction=maximize",
                   "optimizer.lr=interval(1e-4,1e-2)", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1",
                   "hydra.sweeper.sampler.seed=0", *TINY, *SHORT, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert res.returncode == 0, describe(res)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = _trials(sweep)
    assert len(trials) == 2
    assert best["best_value"] == pytest.approx(max(t["final_val_psnr"] for t in trials))
    assert 1e-4 <= best["best_params"]["optimizer.lr"] <= 1e-2
    assert "setup plugin alembic" not in res.stdout + res.stderr  # quiet


@pytest.mark.slow
def test_optuna_sweep_goes_on_past_a_failed_trial(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    # Grid over depth 1 and 9: depth 9 needs 512 px images, a config error in that trial alone.
    res = run_cli(["train", "-m", "hydra/sweeper=optuna", "hydra/sweeper/sampler=grid", "hydra.sweeper.direction=maximize",
                   "model.depth=choice(1,9)", "hydra.sweeper.n_trials=2", *TINY, *SHORT,
                   f"hydra.sweep.dir={sweep}"], tmp_path)
    assert res.returncode == 0, describe(res)
    assert "Failed experiment: Return value must be float-castable" in res.stdout + res.stderr
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_params"]["model.depth"] == 1
    assert sorted(t["status"] for t in _trials(sweep)) == ["completed", "failed"]


@pytest.mark.slow
def test_optuna_without_maximize_warns(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    res = run_cli(["train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=1", *TINY, "trainer.max_steps=1",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path)
    assert res.returncode == 0, describe(res)
    assert "add hydra.sweeper.direction=maximize" in res.stdout + res.stderr


@pytest.mark.long
def test_tuned_group_sets_each_models_lr():
    from omegaconf import OmegaConf

    from skipbench.config import ConfigError, check_config

    from conftest import compose

    tuned = OmegaConf.load(Path(sbconfig.config_dir()) / "tuned" / "denoise_shapes.yaml").tuned_lr
    for model, lr in tuned.items():
        cfg = compose([f"model={model}", "tuned=denoise_shapes"])
        check_config(cfg)
        assert cfg.optimizer.lr == lr
    assert compose(["model=resnet"]).optimizer.lr == 1e-3  # without tuned=: the optimizer's default
    with pytest.raises(ConfigError, match="no tuned learning rate for model=highway"):
        check_config(compose(["model=highway", "tuned=denoise_shapes"]))


def test_tune_lr_preset_maximises_a_log_uniform_lr():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    sbconfig.register_configs()
    with initialize_config_dir(config_dir=str(sbconfig.config_dir()), version_base="1.3"):
        cfg = hydra_compose("train", overrides=["experiment=tune_lr", "model=resnet"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_ and str(sweeper.direction) == "maximize"
    assert sweeper.params["optimizer.lr"] == "tag(log, interval(1e-4, 1e-2))"
    assert sweeper.sampler.seed == 0 and cfg.seed == 100  # tuned at a seed the comparisons do not use
