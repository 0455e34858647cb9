"""Sweeps through the launcher plugins: joblib (local parallel) and submitit_local (real jobs)."""

from __future__ import annotations

import json
import os
import time

import pytest

from conftest import TINY, describe, job_dir, read_metrics, run_cli

SHORT = ["trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2"]


@pytest.mark.long
def test_joblib_sweep_two_variants_two_seeds(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="install skipbench[cluster]")
    sweep = tmp_path / "sweep"
    res = run_cli(["train", "-m", "model=autoencoder,unet_concat", "seed=0,1", "hydra/launcher=joblib",
                   "hydra.launcher.n_jobs=2", *TINY, *SHORT, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    assert f"sweep: 4 jobs: 4 completed; report: skipbench report {sweep}" in res.stderr, describe(res)
    runs = sorted(d for d in sweep.iterdir() if d.is_dir() and (d / "metrics.json").exists())
    assert len(runs) == 4
    seen = set()
    for run in runs:
        m = read_metrics(run)
        assert m["status"] == "completed"
        info = json.loads((run / "run_info.json").read_text())
        # 2 jobs share the cores: each gets its half (at least 1), so they do not oversubscribe them
        assert info["torch_threads"] == max(1, (os.cpu_count() or 1) // 2)
        seen.add((m["model"], m["seed"]))
    assert seen == {("autoencoder", 0), ("autoencoder", 1), ("unet_concat", 0), ("unet_concat", 1)}


@pytest.mark.long
def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_cli(["train", "-m", *TINY, *SHORT, "optimizer.lr=-1,0.001", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert res.returncode == 1, describe(res)  # the sweep went on, but a job did not complete
    bad, good = job_dir(sweep, "optimizer.lr=-1"), job_dir(sweep, "optimizer.lr=0.001")
    assert read_metrics(bad)["status"] == "failed" and "optimizer.lr" in read_metrics(bad)["error"]
    assert read_metrics(good)["status"] == "completed"
    last = res.stderr.strip().splitlines()[-1]
    assert last == f"sweep: 2 jobs: 1 completed, 1 failed; report: skipbench report {sweep}", describe(res)


def test_sweep_summary_counts_statuses_and_marks_lost_jobs(tmp_path):
    from skipbench.sweep import summarize

    for name, metrics in [("0_a", {"status": "completed"}), ("1_b", {"status": "diverged", "steps": 3,
                          "max_steps": 9}), ("2_c", {"status": "cancelled", "error": "SLURM state CANCELLED"}),
                          ("3_d", None)]:
        (tmp_path / name / ".hydra").mkdir(parents=True)
        (tmp_path / name / ".hydra" / "overrides.yaml").write_text("[]\n")
        if metrics:
            (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / ".submitit").mkdir()  # not a job
    out = summarize(tmp_path)
    assert not out.ok
    assert out.line() == (f"sweep: 4 jobs: 1 completed, 1 diverged, 1 cancelled, 1 lost; "
                          f"report: skipbench report {tmp_path}")
    assert out.problems[0] == "1_b: diverged: stopped at step 3/9"
    assert read_metrics(tmp_path / "3_d")["status"] == "lost"  # recorded in its folder
    assert summarize(tmp_path / "missing").ok


@pytest.mark.long
def test_submitit_local_sweep_of_two_jobs(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="install skipbench[cluster]")
    sweep = tmp_path / "sweep"
    res = run_cli(["train", "-m", "model=autoencoder,resnet", "hydra/launcher=local", *TINY, *SHORT,
                   f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=400)
    assert res.returncode == 0, describe(res)
    assert f"sweep: 2 jobs: 2 completed; report: skipbench report {sweep}" in res.stderr, describe(res)
    for job in ("model=autoencoder", "model=resnet"):
        assert read_metrics(job_dir(sweep, job))["status"] == "completed"
    jobs = [d for d in (sweep / ".submitit").iterdir() if d.is_dir() and d.name.isdigit()]  # not the %j template
    assert len(jobs) == 2, sorted(p.name for p in (sweep / ".submitit").rglob("*"))
    for job in jobs:
        # submitit's own words; its log files may be flushed a moment after the result is in
        for _ in range(50):
            text = "".join(p.read_text() for p in job.glob("*_log.*"))
            if "Job completed successfully" in text:
                break
            time.sleep(0.2)
        assert "Job completed successfully" in text, text[-2000:]
