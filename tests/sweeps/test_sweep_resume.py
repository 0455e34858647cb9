"""Sweeps that resume and grow, through the CLI: finished jobs are never retrained or rewritten, an
interrupted sweep resumes to exactly the results of an uninterrupted one, a sweep folder holds one
experiment, probes keep out of training folders, and a sweep's workers die with it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TINY, describe, job_dir, read_metrics, run_cli, start_cli

SHORT = ["trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2", "trainer.num_threads=1"]


def files(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file below ``folder`` (the sweep's own multirun.yaml aside): its hash and its mtime in ns."""
    return {str(p.relative_to(folder)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "multirun.yaml"}


def last_line(res: subprocess.CompletedProcess) -> str:
    return res.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_grown_sweep_reruns_nothing_finished_and_a_changed_setting_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "model=autoencoder", *TINY, *SHORT, f"hydra.sweep.dir={sweep}"]
    res = run_cli([*args, "seed=0,1"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    before = files(sweep)
    res = run_cli([*args, "seed=0,1,2"], cwd=tmp_path)  # one seed more
    assert res.returncode == 0, describe(res)
    assert last_line(res) == f"sweep: 3 jobs: 3 completed (2 reused, 0 resumed, 1 run); report: skipbench report {sweep}"
    after = files(sweep)
    assert {k: after[k] for k in before} == before  # byte for byte, mtimes included
    assert read_metrics(job_dir(sweep, "seed=2"))["status"] == "completed"
    # the whole sweep again, by its folder: everything reused, nothing written
    res = run_cli(["train", f"resume={sweep}"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    assert last_line(res) == f"sweep: 3 jobs: 3 completed (3 reused, 0 resumed, 0 run); report: skipbench report {sweep}"
    assert files(sweep) == after
    # another experiment into the same folder: refused in one line, before anything is written
    res = run_cli([*args, "seed=0,1,2", "trainer.max_steps=8"], cwd=tmp_path)
    assert res.returncode == 2, describe(res)
    assert res.stderr.strip() == (f"skipbench train: error: hydra.sweep.dir={sweep}: trainer.max_steps=8 here, 4 in "
                                  "the sweep already there; a sweep folder holds one experiment, only the swept keys "
                                  "may change (run it with the same settings, or choose another hydra.sweep.dir)")
    assert files(sweep) == after


@pytest.mark.slow
def test_an_interrupted_sweep_resumes_to_the_results_of_an_uninterrupted_one(tmp_path):
    steps = ["trainer.max_steps=60", "trainer.eval_every=2", "trainer.log_every=2", "trainer.num_threads=1"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = ["train", "-m", "model=autoencoder", "seed=0,1", *TINY, *steps]
    res = run_cli([*args, f"hydra.sweep.dir={whole}"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    proc = start_cli([*args, f"hydra.sweep.dir={cut}"], cwd=tmp_path)
    deadline = time.monotonic() + 200
    while not list(cut.glob("*/checkpoint.pt")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # what a scheduler sends: the job saves and the sweep stops
    _, err = proc.communicate(timeout=200)
    assert proc.returncode == 143, err[-3000:]
    # a stopped sweep still says what it left: the job it never started is counted lost
    assert err.strip().splitlines()[-1] == f"sweep: 2 jobs: 1 interrupted, 1 lost; report: skipbench report {cut}", err
    assert "never started" in err
    first = read_metrics(job_dir(cut, "seed=0"))
    assert first["status"] == "interrupted" and first["steps"] < 60, first
    assert not (cut / "seed=1").exists() and len([d for d in cut.iterdir() if d.is_dir()]) == 1  # never started
    res = run_cli([*args, f"hydra.sweep.dir={cut}"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    assert last_line(res) == f"sweep: 2 jobs: 2 completed (0 reused, 1 resumed, 1 run); report: skipbench report {cut}"
    for seed in ("seed=0", "seed=1"):
        a, b = read_metrics(job_dir(whole, seed)), read_metrics(job_dir(cut, seed))
        finals = {k: v for k, v in a.items() if k.startswith(("final_", "best_"))}
        assert finals and finals == {k: b[k] for k in finals}, (seed, a, b)
    assert (job_dir(cut, "seed=0") / f"run_info.resume{first['steps']}.json").is_file()


@pytest.mark.slow
def test_resume_auto_on_finished_runs_keeps_their_summaries(tmp_path):
    """What the local and SLURM launchers add to every job (and a requeue of a finished job does)."""
    sweep, run = tmp_path / "sweep", tmp_path / "run"
    args = ["train", "-m", "model=autoencoder", "seed=0", *TINY, *SHORT, f"hydra.sweep.dir={sweep}"]
    assert run_cli(args, cwd=tmp_path).returncode == 0
    res = run_cli(["train", *TINY, *SHORT, f"hydra.run.dir={run}"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    before = {**files(sweep), **files(run)}
    assert "final_val_psnr" in read_metrics(job_dir(sweep, "seed=0"))
    res = run_cli([*args, "resume=auto"], cwd=tmp_path)
    assert res.returncode == 0 and "1 reused" in last_line(res), describe(res)
    res = run_cli(["train", *TINY, *SHORT, "resume=auto", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert res.returncode == 0 and "the run already completed" in res.stderr, describe(res)
    assert {**files(sweep), **files(run)} == before
    assert "final_val_psnr" in read_metrics(job_dir(sweep, "seed=0")) and "final_val_psnr" in read_metrics(run)


def test_a_probe_into_a_training_run_folder_is_refused(tmp_path, capsys):
    from conftest import run_main

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("[]\n")
    (run / "metrics.json").write_text(json.dumps({"status": "completed", "final_val_psnr": 20.0}))
    (run / "checkpoint.pt").write_bytes(b"weights")
    before = files(run)
    code, _, err = run_main(["probe", *TINY, f"hydra.run.dir={run}"], capsys)
    assert code == 2, err
    assert err.strip().splitlines()[-1].startswith(f"skipbench probe: error: hydra.run.dir={run}: already holds a run")
    assert files(run) == before and sorted(p.name for p in run.iterdir()) == [".hydra", "checkpoint.pt", "metrics.json"]


def test_a_sweep_into_a_folder_another_sweep_holds_is_refused_before_anything_is_written(tmp_path, capsys):
    import fcntl

    from conftest import run_main

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    fd = os.open(sweep, os.O_RDONLY | os.O_DIRECTORY)  # the other sweep's lock (held for its lifetime)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        code, _, err = run_main(["train", "-m", "seed=0,1", *TINY, *SHORT, f"hydra.sweep.dir={sweep}"], capsys)
    finally:
        os.close(fd)
    assert code == 2, err
    assert err.strip().splitlines()[-1] == (f"skipbench train: error: {sweep}: another skipbench sweep is using this "
                                            "sweep folder; wait for it to finish or choose another hydra.sweep.dir")
    assert list(sweep.iterdir()) == []  # no multirun.yaml, no job folder, no "failed" in someone else's job


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has died
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_kill_9_of_a_joblib_sweep_kills_its_workers_and_a_rerun_resumes_them(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="install skipbench[cluster]")
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "model=autoencoder", "seed=0,1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
            *TINY, "trainer.max_steps=3000", "trainer.eval_every=20", "trainer.log_every=20", f"hydra.sweep.dir={sweep}"]
    proc = start_cli(args, cwd=tmp_path)
    deadline = time.monotonic() + 200
    while len(list(sweep.glob("*/checkpoint.pt"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    children = [int(p) for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True,
                                                text=True).stdout.split()]
    assert len(children) >= 2, children  # the two workers (and loky's resource trackers)
    proc.kill()
    killed = time.monotonic()
    proc.wait()  # not communicate(): an orphan holding the pipes would keep it waiting
    try:
        while any(_alive(p) for p in children) and time.monotonic() - killed < 30:
            time.sleep(0.2)
        took = time.monotonic() - killed
        assert not any(_alive(p) for p in children), f"outlived the sweep by 30 s: {[p for p in children if _alive(p)]}"
        assert took < 25  # within seconds (a running job first saves its checkpoint)
    finally:
        for p in children:  # a worker the bug under test left behind
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()
    statuses = sorted(read_metrics(d)["status"] for d in sweep.iterdir() if (d / "metrics.json").exists())
    assert statuses == ["interrupted", "interrupted"], statuses  # saved on the way out: a re-run resumes them


def test_a_training_sweep_never_trains_over_a_probe_sweeps_folder(tmp_path, capsys):
    from conftest import run_main

    sweep = tmp_path / "sweep"
    job = sweep / "denoise_unet_concat"
    (job / ".hydra").mkdir(parents=True)
    overrides = ["seed=0", *TINY, *SHORT]
    (job / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))  # JSON is YAML
    (job / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (job / "probe.json").write_text("{}")
    (job / "train.log").write_text("probed\n")  # Hydra's job log, as every job folder has
    (job / "metrics.json").write_text(json.dumps({"status": "completed", "probe": "probe.json"}))
    before = files(sweep)
    code, _, err = run_main(["train", "-m", *overrides, f"hydra.sweep.dir={sweep}"], capsys)
    assert f"error: {job}: holds a probe (probe.json), not a training run" in err, err
    assert files(sweep) == before
