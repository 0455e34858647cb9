"""The SLURM launcher's checks without a cluster: partition limits, GPU defaults, sbatch's refusals.

(``tests/sweeps/test_slurm.py`` runs the same against a real SLURM.)
"""

from __future__ import annotations

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="install skipbench[cluster]")

from skipbench.launcher import LaunchError, _minutes, describe_sbatch_error, fit_request, partition_limits  # noqa: E402

LIMITS = {"name": "debug", "max_time_min": 60.0, "max_nodes": 1, "cpus": 2, "mem_mb": 22057, "gpus": 0}
ASK = {"timeout_min": 30, "cpus_per_task": 1, "tasks_per_node": 1, "mem_gb": 2, "nodes": 1}


@pytest.mark.parametrize("text, minutes", [("UNLIMITED", None), ("30", 30), ("1:00:00", 60), ("2-00:00:00", 2880),
                                           ("10:30", 10.5)])
def test_slurm_times_in_minutes(text, minutes):
    assert _minutes(text) == minutes


@pytest.mark.parametrize("device, gpus_on_nodes, wanted", [("cpu", 4, 0), ("cuda", 4, 1), ("auto", 0, 0), ("auto", 4, 1)])
def test_gpus_only_when_the_run_uses_them(device, gpus_on_nodes, wanted):
    params = {**ASK, "gpus_per_node": None}  # null in configs/hydra/launcher/slurm.yaml
    fit_request(params, device, {**LIMITS, "gpus": gpus_on_nodes, "max_time_min": None})
    assert params["gpus_per_node"] == wanted


def test_cuda_on_a_partition_without_gpus_is_refused():
    with pytest.raises(LaunchError, match=r"^trainer.device=cuda: partition 'debug' has no GPUs; use trainer.device=cpu"):
        fit_request({**ASK, "gpus_per_node": None}, "cuda", LIMITS)


@pytest.mark.parametrize("key, value, words", [
    ("timeout_min", 120, "at most 60 min (MaxTime)"),
    ("cpus_per_task", 8, "at most 2 CPUs per node"),
    ("mem_gb", 32, "at most 22057 MB per node"),
    ("gpus_per_node", 1, "hydra.launcher.gpus_per_node=0 with trainer.device=cpu"),
])
def test_a_request_beyond_the_partition_names_the_setting(key, value, words):
    with pytest.raises(LaunchError) as ex:
        fit_request({**ASK, "gpus_per_node": 0, key: value}, "cpu", LIMITS)
    msg = str(ex.value)
    assert msg.startswith(f"hydra.launcher.{key}={value}: partition 'debug' allows") and words in msg, msg
    fit_request({**ASK, "gpus_per_node": 0}, "cpu", LIMITS)  # what fits passes


def test_sbatch_refusals_become_one_line():
    msg = describe_sbatch_error("sbatch: error: Batch job submission failed: Invalid generic resource (gres) "
                                "specification\n")
    assert msg == ("sbatch refused the jobs: Invalid generic resource (gres) specification; "
                   "change hydra.launcher.gpus_per_node (or gres)")
    assert describe_sbatch_error("sbatch: error: invalid partition specified: gpu").endswith(
        "change hydra.launcher.partition")


def _fake_slurm(tmp_path, monkeypatch) -> None:
    """``scontrol`` and ``sinfo`` on PATH that describe partitions cpu (default) and gpu; no ``sbatch``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(
        "#!/bin/sh\necho 'PartitionName=cpu Default=YES MaxNodes=UNLIMITED MaxTime=1-00:00:00 MaxCPUsPerNode=16 "
        "MaxMemPerNode=UNLIMITED TotalNodes=4'\necho 'PartitionName=gpu MaxTime=UNLIMITED TotalNodes=2'\n")
    (bin_dir / "sinfo").write_text(
        "#!/bin/sh\ncase \"$*\" in *gpu*) echo '32|256000|gpu:a100:4(S:0-1)' ;; *) echo '64|128000|(null)' ;; esac\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


def test_partition_limits_from_scontrol_and_sinfo(tmp_path, monkeypatch):
    _fake_slurm(tmp_path, monkeypatch)
    assert partition_limits(None) == {"name": "cpu", "max_time_min": 1440, "max_nodes": 4, "cpus": 16,
                                      "mem_mb": 128000, "gpus": 0}
    assert partition_limits("gpu") == {"name": "gpu", "max_time_min": None, "max_nodes": 2, "cpus": 32,
                                       "mem_mb": 256000, "gpus": 4}
    with pytest.raises(LaunchError, match="hydra.launcher.partition=big: no such partition; known: cpu, gpu"):
        partition_limits("big")


def test_a_sweep_the_partition_refuses_says_one_line_and_counts_no_jobs(tmp_path, monkeypatch):
    """Nothing was submitted: the refusal is the whole answer (no "2 lost" sweep summary before it)."""
    from conftest import TINY, describe, run_cli

    _fake_slurm(tmp_path, monkeypatch)
    res = run_cli(["train", "-m", "model=autoencoder,unet_concat", "hydra/launcher=slurm",
                   "hydra.launcher.cpus_per_task=64", *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert res.returncode == 2, describe(res)
    assert res.stderr.strip().splitlines() == [
        "skipbench train: error: hydra.launcher.cpus_per_task=64: partition 'cpu' allows at most 16 CPUs per node "
        "(cpus_per_task x tasks_per_node); use a lower hydra.launcher.cpus_per_task or another "
        "hydra.launcher.partition"], describe(res)


@pytest.mark.long
def test_resume_auto_continues_from_the_run_folders_own_checkpoint(tmp_path):
    """What a requeued SLURM job does: the same command again, in the same folder, with resume=auto."""
    from conftest import TINY, describe, read_metrics, run_cli

    run_dir = tmp_path / "run"
    args = ["train", *TINY, "trainer.eval_every=2", "trainer.log_every=2", "resume=auto", f"hydra.run.dir={run_dir}"]
    res = run_cli([*args, "trainer.max_steps=2"], cwd=tmp_path)  # no checkpoint yet: a fresh start
    assert res.returncode == 0, describe(res)
    assert read_metrics(run_dir)["steps"] == 2 and not list(run_dir.glob("run_info.resume*.json"))
    res = run_cli([*args, "trainer.max_steps=4"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    assert read_metrics(run_dir)["steps"] == 4
    assert [p.name for p in run_dir.glob("run_info.resume*.json")] == ["run_info.resume2.json"]
