"""The sweep folder's contract, piece by piece and fast: job folders found by their overrides, one
experiment per folder, finished jobs recognised, the sweep folder locked, reused/resumed/run counted."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
import yaml

from skipbench.commands.job import finished
from skipbench.errors import RunFolderError
from skipbench.run_lock import claim_run_folder, claim_sweep_folder
from skipbench.run_names import job_dir_name, output_subdir
from skipbench.sweep import experiment_difference, snapshot, summarize


def _job(sweep: Path, name: str, overrides: list[str], config: dict | None = None, metrics: dict | None = None,
         choices: dict | None = None) -> Path:
    d = sweep / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config or {"seed": 0}))
    (d / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices or {}}}}))
    if metrics:
        (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def test_a_job_finds_its_old_folder_by_its_overrides_not_its_name(tmp_path):
    _job(tmp_path, "0_old_name", ["model=resnet", "seed=1", "trainer.max_steps=4"])
    _job(tmp_path, "denoise_resnet_seed=2", ["model=resnet", "seed=2", "trainer.max_steps=4"])
    # same job (free keys such as resume=auto, trainer.progress do not count): its old folder
    assert job_dir_name(str(tmp_path), "denoise_resnet_seed=1",
                        ["model=resnet", "seed=1", "trainer.max_steps=4", "resume=auto", "trainer.progress=false"]) \
        == "0_old_name"
    # a new job: its own name; a name another job holds: a suffix, never the other job's folder
    assert job_dir_name(str(tmp_path), "denoise_resnet_seed=3", ["model=resnet", "seed=3"]) == "denoise_resnet_seed=3"
    assert job_dir_name(str(tmp_path), "denoise_resnet_seed=2", ["model=resnet", "seed=2", "trainer.max_steps=8"]) \
        == "denoise_resnet_seed=2~2"


def test_a_key_swept_only_now_matches_the_folders_that_ran_with_its_default(tmp_path):
    _job(tmp_path, "denoise_resnet", ["model=resnet"], config={"seed": 0})
    assert job_dir_name(str(tmp_path), "denoise_resnet_seed=0", ["model=resnet", "seed=0"]) == "denoise_resnet"
    assert job_dir_name(str(tmp_path), "denoise_resnet_seed=1", ["model=resnet", "seed=1"]) == "denoise_resnet_seed=1"
    # the other way round: the old job said seed=0, this one leaves seed at its config's 0
    _job(tmp_path, "denoise_plain_seed=0", ["model=plain", "seed=0"])
    cfg = {"seed": 0, "hydra": {"runtime": {"choices": {"model": "plain"}}}}
    assert job_dir_name(str(tmp_path), "denoise_plain", ["model=plain"], cfg) == "denoise_plain_seed=0"
    assert job_dir_name(str(tmp_path), "denoise_plain", ["model=plain"], {**cfg, "seed": 5}) == "denoise_plain"


def test_hydra_writes_no_config_into_a_folder_that_holds_a_job(tmp_path):
    assert output_subdir(str(tmp_path / "new")) == ".hydra"
    old = _job(tmp_path, "old", ["seed=0"])
    assert output_subdir(str(old)) is None


def _master(task: list[str], params: dict | None = None, **values) -> dict:
    cfg = {"seed": 0, "trainer": {"max_steps": 4, "progress": True, "device": "auto"},
           "model": {"name": "unet_concat", "width": 4}, "hydra": {
               "overrides": {"task": task}, "sweeper": {"params": params},
               "runtime": {"choices": {"model": "unet_concat", "optimizer": "adam"}}}}
    for key, value in values.items():
        section, _, leaf = key.partition("__")
        if leaf:
            cfg[section][leaf] = value
        else:
            cfg[section] = value
    return cfg


def test_only_the_swept_keys_may_change_between_sweeps_of_one_folder():
    old = _master(["model=a,b", "seed=0,1", "trainer.max_steps=4"], trainer__max_steps=4)
    # grown: more seeds, another model, a free key changed -- the same experiment
    assert experiment_difference(old, _master(["model=a,b,c", "seed=0,1,2", "trainer.max_steps=4",
                                               "trainer.progress=false"], trainer__max_steps=4,
                                              trainer__progress=False)) is None
    assert experiment_difference(old, _master(["model=a", "seed=5", "trainer.max_steps=4"])) is None  # a subset
    changed = experiment_difference(old, _master(["model=a,b", "seed=0,1", "trainer.max_steps=8"], trainer__max_steps=8))
    assert changed == "trainer.max_steps=8 here, 4 in the sweep already there"
    # an explicit default is no change; a setting changed in the config files (not on the command line) is one
    assert experiment_difference(_master(["seed=0,1"]), _master(["seed=0,1", "trainer.max_steps=4"])) is None
    assert "model.width=8 here, 4" in experiment_difference(_master(["seed=0,1"]), _master(["seed=0,1"],
                                                                                         model__width=8))
    assert "optimizer=sgd here, adam" in experiment_difference(_master(["seed=0,1"]),
                                                               _master(["seed=0,1", "optimizer=sgd"]))
    # the sweeper's own params (a preset's) are swept keys too
    assert experiment_difference(_master([], {"seed": "0,1"}), _master([], {"seed": "0,1,2,3"}, seed=0)) is None


def test_a_finished_job_is_one_that_completed_its_steps_or_diverged(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert finished(run, 4) is None  # nothing yet: run it
    for metrics, max_steps, done in [({"status": "completed", "steps": 4}, 4, True),
                                     ({"status": "completed", "steps": 4}, 8, False),  # max_steps grew: continue
                                     ({"status": "interrupted", "steps": 2}, 4, False),
                                     ({"status": "lost"}, 4, False), ({"status": "failed"}, 4, False),
                                     ({"status": "diverged", "steps": 3}, 4, True)]:
        (run / "metrics.json").write_text(json.dumps(metrics))
        assert (finished(run, max_steps) is not None) == done, (metrics, max_steps)


def test_the_summary_counts_reused_resumed_and_run_jobs(tmp_path):
    kept = _job(tmp_path, "kept", ["seed=0"], metrics={"status": "completed", "steps": 4})
    resumed = _job(tmp_path, "resumed", ["seed=1"], metrics={"status": "interrupted", "steps": 2})
    (resumed / "checkpoint.pt").write_bytes(b"x")
    before = snapshot(tmp_path)
    (resumed / "metrics.json").write_text(json.dumps({"status": "completed", "steps": 4}))
    os.utime(resumed / "metrics.json", ns=(1, 1))  # a different mtime, however coarse the file system's clock
    _job(tmp_path, "new", ["seed=2"], metrics={"status": "completed", "steps": 4})
    out = summarize(tmp_path, before)
    assert out.line() == f"sweep: 3 jobs: 3 completed (1 reused, 1 resumed, 1 run); report: skipbench report {tmp_path}"
    assert summarize(tmp_path).line() == f"sweep: 3 jobs: 3 completed; report: skipbench report {tmp_path}"
    assert kept.exists()


def test_a_sweep_folder_is_locked_and_a_run_folder_is_no_sweep_folder(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    fd = os.open(sweep, os.O_RDONLY | os.O_DIRECTORY)  # another process's sweep holds it
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(RunFolderError, match="another skipbench sweep is using this sweep folder.*hydra.sweep.dir"):
            claim_sweep_folder(sweep)
    finally:
        os.close(fd)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    with pytest.raises(RunFolderError, match="holds a single run, not a sweep"):
        claim_sweep_folder(run)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "probe.json").write_text("{}")
    with pytest.raises(RunFolderError, match="already holds a probe"):
        claim_run_folder(probe, resume=False)


def test_default_sweep_folder_names_have_microseconds():
    from conftest import compose

    text = (Path(__file__).parents[2] / "configs" / "train.yaml").read_text()
    assert "dir: outputs/multirun/${now:%Y-%m-%d_%H-%M-%S.%f}" in text
    for preset in (Path(__file__).parents[2] / "configs" / "experiment").glob("*.yaml"):
        body = preset.read_text()
        assert "%S}" not in body, f"{preset.name}: a sweep folder named to the second"
    assert compose(["seed=1"]).seed == 1  # the config still composes with the new resolvers


def test_jobs_that_never_started_are_counted_lost(tmp_path):
    from omegaconf import OmegaConf

    from skipbench.sweep import planned_jobs

    cfg = OmegaConf.create({"seed": 0, "hydra": {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": {"seed": "0,1"}},
        "overrides": {"task": ["model=a,b", "trainer.max_steps=4"]}}})
    planned = planned_jobs(cfg)
    assert sorted(map(sorted, planned)) == sorted(sorted([m, s, "trainer.max_steps=4"]) for m in ("model=a", "model=b")
                                                  for s in ("seed=0", "seed=1"))
    _job(tmp_path, "a0", ["model=a", "seed=0", "trainer.max_steps=4"], metrics={"status": "completed", "steps": 4})
    _job(tmp_path, "a1", ["model=a", "seed=1", "trainer.max_steps=4"], metrics={"status": "interrupted", "steps": 2})
    out = summarize(tmp_path, planned=planned, master=OmegaConf.to_container(cfg))
    assert out.line().startswith("sweep: 4 jobs: 1 completed, 1 interrupted, 2 lost;"), out.line()
    assert sum("never started" in p for p in out.problems) == 2
    assert planned_jobs(OmegaConf.create({"hydra": {"sweeper": {"_target_": "optuna"}}})) is None


def test_a_job_that_never_reached_python_is_found_again_by_its_overrides(tmp_path):
    """A SLURM job that failed before Python started: the launcher records it, with its overrides."""
    from skipbench.launcher import record_unfinished

    record_unfinished(tmp_path / "denoise_resnet_seed=1", "failed", "SLURM state NODE_FAIL", ["model=resnet", "seed=1"])
    assert job_dir_name(str(tmp_path), "denoise_resnet_seed=1", ["model=resnet", "seed=1", "resume=auto"]) \
        == "denoise_resnet_seed=1"
    assert output_subdir(str(tmp_path / "denoise_resnet_seed=1")) == ".hydra"  # no config saved yet: Hydra writes it
