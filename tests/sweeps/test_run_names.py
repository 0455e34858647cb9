"""Run names: a sweep job's folder lists only the overrides the sweep varies (skipbench/run_names.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from skipbench.run_names import sweep_keys, varying_overrides


def _sweep(tmp_path: Path, task_overrides: list[str], params: dict | None = None) -> str:
    """A sweep folder with the ``multirun.yaml`` Hydra's basic sweeper writes before its first job."""
    hydra = {"overrides": {"task": task_overrides}, "sweeper": {"params": params}}
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, "seed": 0}))
    sweep_keys.cache_clear()
    return str(tmp_path)


def test_shared_overrides_are_left_out(tmp_path):
    sweep = _sweep(tmp_path, ["model=autoencoder,resnet", "trainer.max_steps=200", "seed=0,1"])
    job = ["model=resnet", "trainer.max_steps=200", "seed=1"]
    assert varying_overrides(sweep, job) == "_seed=1"  # model is in the name already, max_steps is shared
    assert varying_overrides(sweep, ["model=resnet", "trainer.max_steps=200", "seed=1"], ["seed"]) == ""


def test_preset_sweeper_params_count_as_varying(tmp_path):
    sweep = _sweep(tmp_path, ["experiment=compare_skips", "optimizer.lr=0.01"],
                   {"model": "autoencoder,resnet", "seed": "0,1,2"})
    job = ["experiment=compare_skips", "optimizer.lr=0.01", "model=resnet", "seed=2"]
    assert varying_overrides(sweep, job) == "_seed=2"


def test_range_and_glob_sweeps_vary_too(tmp_path):
    sweep = _sweep(tmp_path, ["model.width=range(8,33,8)", "+task.sigma=0.1,0.3"])
    assert varying_overrides(sweep, ["model.width=16", "+task.sigma=0.3"]) == "_model.width=16,task.sigma=0.3"


def test_without_multirun_yaml_every_override_is_listed(tmp_path):
    sweep_keys.cache_clear()
    job = ["model=resnet", "trainer.max_steps=200", "trainer.progress=false"]
    assert varying_overrides(str(tmp_path / "nowhere"), job, ["trainer.progress"]) == "_trainer.max_steps=200"
