"""Sweeps on a real single-node SLURM (``scripts/slurm_local.sh``): ``python -m pytest -m slurm``.

Needs root and Debian's slurm packages (the script installs them with apt-get when missing). Where the
cluster cannot come up the tests are skipped, except under ``CI=true``, where that is a failure.
Every CLI call has its own timeout; jobs poll their folders, never sleep for a fixed time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import TINY, describe, finish, load_events, read_metrics, run_cli, start_cli

pytestmark = pytest.mark.slurm

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm_local.sh"
# 1 CPU per job: two jobs run side by side on a 2-core node. 30 min: far above what a test needs.
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
         "hydra.launcher.timeout_min=30"]
SHORT = ["trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2"]


def _sh(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running cluster for the session: reused if one is up, else brought up here and down at the end."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="install skipbench[cluster]")
    was_up = _sh("bash", str(SCRIPT), "status").returncode == 0
    started = time.perf_counter()
    try:
        res = _sh("bash", str(SCRIPT), "up", timeout=600)
    except subprocess.TimeoutExpired:
        res = subprocess.CompletedProcess([], 124, "", "slurm_local.sh up timed out after 600 s")
    conf = re.search(r"export SLURM_CONF=(\S+)", res.stdout)
    if res.returncode != 0 or not conf:
        why = f"no SLURM cluster here: {(res.stderr.strip().splitlines() or ['?'])[-1]}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI=true: the SLURM tests must run)")
        pytest.skip(why)
    print(f"\nslurm_local.sh up: {time.perf_counter() - started:.1f} s")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf.group(1)  # the CLI subprocesses inherit it
    yield conf.group(1)
    if old is None:
        os.environ.pop("SLURM_CONF")
    else:
        os.environ["SLURM_CONF"] = old
    if not was_up:
        _sh("bash", str(SCRIPT), "down", timeout=120)


def _array_tasks(sweep: Path) -> dict[int, str]:
    """``{job num: SLURM job id}`` from submitit's folders: ``<array>_<task>`` (task = job num here), or
    ``<id>`` for a sweep of one job (submitit submits no array then)."""
    sub = sweep / ".submitit"
    found = [d.name for d in sub.iterdir() if re.fullmatch(r"\d+(_\d+)?", d.name)] if sub.is_dir() else []
    tasks = {int(name.split("_")[1]): name for name in found if "_" in name}
    return tasks or {0: name for name in found}


def _wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the sweep ended before {what}: rc={proc.returncode}\n{err[-3000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _job_folder(sweep: Path, override: str) -> Path | None:
    """The folder of the job with ``override`` (e.g. ``model=unet_concat``): folders are named by their
    overrides, not numbered; each keeps its overrides in ``.hydra/overrides.yaml`` -- the launcher writes
    that file too for a job that never reached Python."""
    for saved in sorted(sweep.glob("*/.hydra/overrides.yaml")) if sweep.is_dir() else []:
        try:
            if override in yaml.safe_load(saved.read_text()):
                return saved.parents[1]
        except (OSError, yaml.YAMLError, TypeError):
            continue  # being written
    return None


def _logged_step(sweep: Path, override: str, step: int) -> bool:
    """The job with ``override`` has evaluated (and checkpointed) step ``step`` or later."""
    d = _job_folder(sweep, override)
    log = d / "train.log" if d else None
    if not log or not log.is_file():
        return False
    return any(int(s) >= step for s in re.findall(r"step (\d+)/", log.read_text()))


def test_two_jobs_run_in_parallel_and_complete(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    started = time.perf_counter()
    res = run_cli(["train", "-m", "model=autoencoder,unet_concat", *SLURM, *TINY, *SHORT,
                   f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=400)
    print(f"2-job sweep: {time.perf_counter() - started:.1f} s")
    assert res.returncode == 0, describe(res)
    assert "sweep: 2 jobs: 2 completed; report: skipbench report" in res.stderr, describe(res)
    assert "Bypassing sacct error" not in res.stdout + res.stderr  # accounting is up
    for model in ("model=autoencoder", "model=unet_concat"):
        d = _job_folder(sweep, model)
        assert read_metrics(d)["status"] == "completed"
        info = json.loads((d / "run_info.json").read_text())
        assert info["torch_threads"] == 1  # hydra.launcher.cpus_per_task
        assert os.environ["SLURM_CONF"] and info["resumed_from_step"] == 0
    # In parallel: SLURM's own record of the two array tasks overlaps in time.
    tasks = _array_tasks(sweep)
    assert sorted(tasks) == [0, 1], tasks
    # submitit returns once each job's result is written; the job's step may still be ending, and the
    # accounting database hears of it a moment later: wait (up to 30 s) until both records are final.
    deadline = time.monotonic() + 30
    while True:
        acct = _sh("sacct", "--noheader", "--allocations", "--parsable2", "--format=JobID,Start,End,State",
                   "--jobs", ",".join(tasks.values())).stdout.split()
        rows = {line.split("|")[0]: line.split("|")[1:] for line in acct}
        if all(rows.get(t, ["", "", "PENDING"])[2] not in ("PENDING", "RUNNING", "COMPLETING") for t in tasks.values()) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    (s0, e0, st0), (s1, e1, st1) = rows[tasks[0]], rows[tasks[1]]
    assert st0 == st1 == "COMPLETED", rows
    assert max(s0, s1) < min(e0, e1), f"the jobs ran one after the other: {rows}"  # ISO times sort as text


def test_a_request_beyond_the_partition_is_refused_before_submission(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    for override, key in [("hydra.launcher.cpus_per_task=64", "cpus_per_task"),
                          ("hydra.launcher.timeout_min=100000", "timeout_min"),
                          ("hydra.launcher.mem_gb=100000", "mem_gb"),
                          ("hydra.launcher.gpus_per_node=1", "gpus_per_node")]:
        started = time.perf_counter()
        res = run_cli(["train", "-m", "model=autoencoder,unet_concat", *SLURM, override, *TINY, *SHORT,
                       f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=120)
        print(f"{override}: refused in {time.perf_counter() - started:.1f} s")
        assert res.returncode == 2, describe(res)
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"skipbench train: error: hydra.launcher.{key}="), describe(res)
        assert "partition 'debug' allows at most" in err[0], err[0]
        assert "Traceback" not in res.stderr
        assert not _array_tasks(sweep)  # nothing reached sbatch


def test_a_job_that_fails_outside_python_is_recorded_with_the_line_of_its_err_file(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    broken = 'hydra.launcher.setup=["echo \\"error: module cuda/12 not found\\" >&2","exit 3"]'  # a broken job script
    started = time.perf_counter()
    res = run_cli(["train", "-m", "model=autoencoder,unet_concat", *SLURM, broken, *TINY, *SHORT,
                   f"hydra.sweep.dir={sweep}"], cwd=tmp_path, timeout=300)
    print(f"failing sweep: {time.perf_counter() - started:.1f} s")
    assert res.returncode == 1, describe(res)
    assert "sweep: 2 jobs: 2 failed; report: skipbench report" in res.stderr, describe(res)
    for model in ("model=autoencoder", "model=unet_concat"):
        m = read_metrics(_job_folder(sweep, model))
        assert m["status"] == "failed" and "FAILED: error: module cuda/12 not found (log: " in m["error"], m
    assert "Traceback" not in res.stderr, describe(res)


def test_a_cancelled_job_is_recorded_and_the_others_finish(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    # job 0 finishes at once; job 1 runs until it is cancelled
    proc = start_cli(["train", "-m", "trainer.max_steps=4,100000", "trainer.eval_every=10", "trainer.log_every=5",
                      *SLURM, *TINY, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    started = time.perf_counter()
    try:
        _wait_for(lambda: _logged_step(sweep, "trainer.max_steps=100000", 10), 300, proc, "job 1's first checkpoint")
        job = _array_tasks(sweep)[1]
        assert _sh("scancel", job).returncode == 0
        res = finish(proc, timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"cancel sweep: {time.perf_counter() - started:.1f} s; scancel {job}")
    assert res.returncode == 1, describe(res)
    assert "sweep: 2 jobs: 1 completed, 1 cancelled; report: skipbench report" in res.stderr, describe(res)
    assert read_metrics(_job_folder(sweep, "trainer.max_steps=4"))["status"] == "completed"
    cancelled = read_metrics(_job_folder(sweep, "trainer.max_steps=100000"))
    assert cancelled["status"] == "cancelled" and "CANCELLED" in cancelled["error"], cancelled
    # it stopped between steps and saved: the metrics of the step it reached, and a checkpoint to resume
    assert 10 <= cancelled["steps"] < 100000, cancelled
    assert (_job_folder(sweep, "trainer.max_steps=100000") / "checkpoint.pt").is_file()
    assert "Traceback" not in res.stderr, describe(res)


def _final_scalars(run_dir: Path) -> dict[str, list[int]]:
    ea = load_events(run_dir)
    return {tag: [e.step for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


@pytest.mark.parametrize("stop", [["scontrol", "requeue"], ["scancel", "--signal=USR2"]],
                         ids=["scontrol-requeue", "time-limit-warning"])
def test_a_requeued_job_resumes_in_its_folder_and_matches_an_uninterrupted_run(slurm_cluster, tmp_path, stop):
    """``scontrol requeue`` (as preemption does): SIGTERM, then SLURM starts the job again. SIGUSR2 (what
    SLURM sends ``signal_delay_s`` before the time limit): the job saves and submitit requeues it."""
    run = [*SLURM, *TINY, "trainer.max_steps=200", "trainer.eval_every=20", "trainer.log_every=10"]
    requeued, reference = tmp_path / "requeued", tmp_path / "reference"
    # the two sweeps side by side, one job each, 1 thread each (bitwise equality needs the same threads)
    proc = start_cli(["train", "-m", "model=unet_concat", *run, f"hydra.sweep.dir={requeued}"], cwd=tmp_path)
    ref = start_cli(["train", "-m", "model=unet_concat", *run, f"hydra.sweep.dir={reference}"], cwd=tmp_path)
    started = time.perf_counter()
    try:
        _wait_for(lambda: _logged_step(requeued, "model=unet_concat", 20), 300, proc, "the job's first checkpoint")
        job = _array_tasks(requeued)[0]
        res = _sh(*stop, job)
        assert res.returncode == 0, res.stderr
        # SLURM holds a requeued job back for a while (2 min here): let it start as soon as it can -- but
        # not in the second the kill revoked its credential: slurmd compares whole seconds, and a start in
        # that same second fails ("Killing non-startable batch JobId=1: Job credential revoked")
        _wait_for(lambda: _sh("squeue", "--noheader", "--format=%T", "--jobs", job).stdout.strip() == "PENDING",
                  120, proc, "the requeued job to pend")
        pending_at = int(time.time())
        _wait_for(lambda: time.time() >= pending_at + 2, 10, proc, "a later second than the credential's revoke")
        _sh("scontrol", "update", f"JobId={job}", "StartTime=now")
        res, ref_res = finish(proc, timeout=400), finish(ref, timeout=400)
    finally:
        for p in (proc, ref):
            if p.poll() is None:
                p.kill()
    print(f"requeue sweep + reference: {time.perf_counter() - started:.1f} s; {' '.join(stop)} {job}")
    assert res.returncode == 0, describe(res)
    assert ref_res.returncode == 0, describe(ref_res)
    d, r = _job_folder(requeued, "model=unet_concat"), _job_folder(reference, "model=unet_concat")
    log = (d / "train.log").read_text()
    # stopped by SLURM's SIGTERM, saved, started again by SLURM and resumed from its own checkpoint
    assert "SIGTERM received" in log and f"resumed from {d}" in log, log[-3000:]
    if "USR2" in stop[1]:
        assert f"Requeued job {job}" in log, log[-3000:]  # by submitit, after the job had saved
    resumed = [p for p in d.glob("run_info.resume*.json")]
    assert len(resumed) == 1, sorted(p.name for p in d.iterdir())
    step = json.loads(resumed[0].read_text())["resumed_from_step"]
    assert 20 <= step < 200
    m, mr = read_metrics(d), read_metrics(r)
    assert m["status"] == mr["status"] == "completed" and m["steps"] == 200
    for key in ("final_val_psnr", "final_val_ssim", "best_val_psnr", "best_step"):
        assert m[key] == mr[key], (key, m[key], mr[key])  # exact: same batches, same threads
    # TensorBoard: one value per step and tag in what TensorBoard shows (the resume purged the overlap)
    scalars = _final_scalars(d)
    assert scalars["loss/mse/train"][-1] == 200 and scalars.keys() == _final_scalars(r).keys()
    for tag, steps in scalars.items():
        assert steps == sorted(set(steps)), (tag, steps)
