"""The fault suite: what a hostile or clumsy user can do, and what skipbench must answer.

Every case asserts the exit code, exactly one line on stderr, no traceback, and -- where a run
folder must be left alone -- that its files are byte-for-byte what they were. Cases that need a
real process (signals, kill -9) run the CLI in a subprocess; the rest call ``skipbench.cli.main``
in-process, which is the same code path without the interpreter's start-up.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from skipbench.cli import main
from skipbench.train.checkpoint import CHECKPOINT, load_checkpoint

from conftest import TINY, describe, finish, start_cli

ANY_DATA = [a for a in TINY if not a.startswith("dataset.")]  # for data sets without train_size
SHORT = ["trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2", "diagnostics.grad_flow=false",
         "diagnostics.images=false"]
QUICK = [*TINY, *SHORT]


# ------------------------------------------------------------------ helpers
def snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (hidden ones included) -> its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def run_main(args: list[str], capsys, cwd: Path, monkeypatch) -> tuple[int, list[str], str]:
    """``skipbench.cli.main(args)`` in ``cwd``: exit code, non-empty stderr lines, stdout."""
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    capsys.readouterr()
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, [line for line in err.splitlines() if line.strip()], out


def one_line(rc: int, lines: list[str], code: int, *words: str) -> str:
    assert rc == code, (rc, lines)
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """One tiny completed run (4 steps, checkpoints at 2 and 4), copied by each test that needs one."""
    cwd = tmp_path_factory.mktemp("base")
    run_dir = cwd / "run"
    old = os.getcwd()
    os.chdir(cwd)
    try:
        assert main(["train", *QUICK, f"hydra.run.dir={run_dir}"]) == 0
    finally:
        os.chdir(old)
    return run_dir


@pytest.fixture
def run_copy(base_run, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(base_run, dest)
    return dest


# ------------------------------------------------------------------ 1. resume trusts nothing but numbers
HOSTILE = {  # case: (lines planted in .hydra/overrides.yaml, what the one line must name)
    # the attack: torch.load with weights_only=false unpickles EVIL, which touches MARKER
    "target": (["task=reconstruct", "task._target_=torch.load", "+task.f=EVIL", "+task.weights_only=false"],
               "task._target_"),
    "plus": (["+task.f=EVIL"], "task.f"),
    "force_add": (["++trainer.evil=1"], "trainer.evil"),
    "delete": (["~trainer.max_steps"], "trainer.max_steps"),
    "partial": (["optimizer._partial_=false"], "optimizer._partial_"),
    "hydra": (["hydra.job_logging.root.level=DEBUG"], "hydra.job_logging"),
    "interpolation": (["dataset.max_shapes=${oc.env:HOME}"], "dataset.max_shapes"),
    "group_path": (["model=../../../tmp/evil"], "model="),
    "not_a_key": (["trainer.nonsense=1"], "trainer.nonsense"),
    "sweep": (["trainer.max_steps=5,6"], "trainer.max_steps"),
    "not_a_list": (None, "not a list of overrides"),  # a mapping instead of a list
}


def _evil_pickle(path: Path, marker: Path) -> Path:
    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path.write_bytes(pickle.dumps(Payload()))
    return path


def test_the_payload_would_run_if_instantiated(tmp_path):
    """The hostile folders below are real threats: Hydra's instantiate runs this payload."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    marker = tmp_path / "MARKER"
    with pytest.raises(InstantiationException):  # torch then finds no checkpoint in it -- too late
        instantiate({"_target_": "torch.load", "f": str(_evil_pickle(tmp_path / "evil.pkl", marker)),
                     "weights_only": False})
    assert marker.exists()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_resume_refuses_hostile_overrides(case, run_copy, tmp_path, capsys, monkeypatch):
    import yaml

    overrides = run_copy / ".hydra" / "overrides.yaml"
    planted, named = HOSTILE[case]
    if planted is None:
        overrides.write_text("task._target_: os.system\n")
    else:
        lines = [*yaml.safe_load(overrides.read_text()), *planted]
        evil = _evil_pickle(tmp_path / "evil.pkl", tmp_path / "MARKER")
        overrides.write_text("".join(f"- {json.dumps(line.replace('EVIL', str(evil)))}\n" for line in lines))
    before = snapshot(run_copy)
    rc, lines, _ = run_main(["train", f"resume={run_copy}", "trainer.max_steps=6"], capsys, tmp_path, monkeypatch)
    one_line(rc, lines, 2, str(overrides), named)
    assert not (tmp_path / "MARKER").exists(), "the planted payload ran"
    assert snapshot(run_copy) == before


def test_resume_keeps_every_plain_setting(tmp_path):
    """The filter is not a blanket refusal: groups, schema keys and quoted paths come back as they were."""
    from skipbench.commands.overrides import with_resume

    legit = ["model=resnet", "experiment=depth", "dataset=folder", "dataset.root='/data/my photos'", "seed=3",
             "optimizer.betas=[0.9,0.99]", "trainer.max_steps=50", "diagnostics.images=false", "model.dense_growth=null"]
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("".join(f"- {json.dumps(line)}\n" for line in legit))
    (tmp_path / CHECKPOINT).write_bytes(b"")
    args = with_resume([f"resume={tmp_path}", "trainer.max_steps=80"])
    assert args[:6] == legit[:6] and {"diagnostics.images=false", "model.dense_growth=null"} <= set(args)
    assert "trainer.max_steps=50" not in args and "trainer.max_steps=80" in args  # yours win


@pytest.mark.long
def test_resume_does_not_trust_hydra_config_yaml(run_copy, tmp_path, capsys, monkeypatch):
    """``.hydra/config.yaml`` is only a record; resume composes from the schema and checked overrides.
    Raising max_steps continues a completed run."""
    marker = tmp_path / "MARKER"
    cfg = run_copy / ".hydra" / "config.yaml"
    evil = _evil_pickle(tmp_path / "evil.pkl", marker)
    cfg.write_text(cfg.read_text().replace("_target_: skipbench.tasks.Denoise",
                                           f"_target_: torch.load\n  f: {evil}\n  weights_only: false"))
    assert "torch.load" in cfg.read_text()
    rc, lines, _ = run_main(["train", f"resume={run_copy}", "trainer.max_steps=6"], capsys, tmp_path, monkeypatch)
    assert rc == 0, lines
    assert not marker.exists()
    m = json.loads((run_copy / "metrics.json").read_text())
    assert m["status"] == "completed" and m["steps"] == 6
    assert "trainer.max_steps=6" in (run_copy / ".hydra" / "overrides.yaml").read_text()


# ------------------------------------------------------------------ 2. run folders protect themselves
def test_resume_of_completed_run_changes_nothing(run_copy, tmp_path, capsys, monkeypatch):
    before = snapshot(run_copy)
    rc, lines, _ = run_main(["train", f"resume={run_copy}"], capsys, tmp_path, monkeypatch)
    one_line(rc, lines, 0, "already completed", "trainer.max_steps")
    assert snapshot(run_copy) == before


def test_resume_with_other_architecture_says_what_differs(run_copy, tmp_path, capsys, monkeypatch):
    before = snapshot(run_copy)
    rc, lines, _ = run_main(["train", f"resume={run_copy}", "model.width=8", "trainer.max_steps=6"],
                            capsys, tmp_path, monkeypatch)
    one_line(rc, lines, 2, "model.width=4", "this config 8")
    assert snapshot(run_copy) == before


def test_checkpoint_of_other_architecture_with_a_lying_config(run_copy, tmp_path, capsys, monkeypatch):
    """The weights are checked against a freshly built model, not only the config stored beside them."""
    state = load_checkpoint(run_copy / CHECKPOINT)
    state["model"] = {k: torch.zeros(*v.shape[:-1], v.shape[-1] + 1) if v.ndim else v for k, v in state["model"].items()}
    torch.save(state, run_copy / CHECKPOINT)
    before = snapshot(run_copy)
    rc, lines, _ = run_main(["train", f"resume={run_copy}", "trainer.max_steps=6"], capsys, tmp_path, monkeypatch)
    one_line(rc, lines, 2, "does not fit", "in the checkpoint")
    assert snapshot(run_copy) == before


BAD_CHECKPOINTS = {
    "corrupt": lambda p, m: p.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096))),
    "truncated": lambda p, m: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "empty": lambda p, m: p.write_bytes(b""),
    "foreign": lambda p, m: torch.save({"weights": torch.zeros(3)}, p),
    "not_a_dict": lambda p, m: torch.save([1, 2, 3], p),
    "malicious": _evil_pickle,
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_bad_checkpoint_is_one_line_and_changes_nothing(case, run_copy, tmp_path, capsys, monkeypatch):
    marker = tmp_path / "MARKER"
    BAD_CHECKPOINTS[case](run_copy / CHECKPOINT, marker)
    before = snapshot(run_copy)
    rc, lines, _ = run_main(["train", f"resume={run_copy}", "trainer.max_steps=6"], capsys, tmp_path, monkeypatch)
    one_line(rc, lines, 2, str(run_copy / CHECKPOINT))
    assert not marker.exists()
    assert snapshot(run_copy) == before


def _hold_lock(folder: Path) -> int:
    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


@pytest.mark.long
def test_busy_run_folder_is_refused(run_copy, tmp_path, capsys, monkeypatch):
    fd = _hold_lock(run_copy)  # another skipbench process would hold exactly this lock
    try:
        before = snapshot(run_copy)
        rc, lines, _ = run_main(["train", f"resume={run_copy}", "trainer.max_steps=6"], capsys, tmp_path, monkeypatch)
        one_line(rc, lines, 2, "another skipbench run is using")
        assert snapshot(run_copy) == before
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        fd2 = _hold_lock(fresh)
        rc, lines, _ = run_main(["train", *QUICK, f"hydra.run.dir={fresh}"], capsys, tmp_path, monkeypatch)
        one_line(rc, lines, 2, "another skipbench run is using")
        assert list(fresh.iterdir()) == []
        os.close(fd2)
    finally:
        os.close(fd)


def test_a_new_run_into_a_used_folder_is_refused(run_copy, tmp_path, capsys, monkeypatch):
    before = snapshot(run_copy)
    rc, lines, _ = run_main(["train", *QUICK, f"hydra.run.dir={run_copy}"], capsys, tmp_path, monkeypatch)
    one_line(rc, lines, 2, "already holds a run", "resume=")
    assert snapshot(run_copy) == before


@pytest.mark.long
def test_sweep_job_folders_stay_inside_the_sweep(tmp_path, capsys, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    sweep = work / "sweep"
    rc, _, _ = run_main(["train", "-m", "dataset=mnist", "dataset.root=../../escape,../../../x", *QUICK,
                         f"hydra.sweep.dir={sweep}"], capsys, work, monkeypatch)
    assert rc == 1  # the jobs fail alone (no MNIST there); the sweep goes on and then says some failed
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 2, [p.name for p in jobs]
    assert all(p.parent == sweep and ".." not in p.name.split("/") for p in jobs)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_dir() and sweep not in [p, *p.parents]) == ["a", "b"]
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["status"] == "failed"


# ------------------------------------------------------------------ 3. no orphans
def _images(folder: Path, n: int, size: int = 40) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (size, size), (i * 40 % 256, 0, 0)).save(folder / f"{i}.png")
    return folder


def _corrupt_images(folder: Path) -> Path:
    _images(folder, 3)
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return folder


ORPHAN_CASES = {
    "batch_larger_than_split": (lambda tmp: ["dataset=folder", f"dataset.root={_images(tmp / 'img', 3)}",
                                              "dataset.crop=32", "dataset.crops_per_image=1", "trainer.batch_size=8"],
                                ["trainer.batch_size=8", "training split"]),
    "task_x_dataset": (lambda tmp: ["dataset=folder", f"dataset.root={_images(tmp / 'img', 3)}", "dataset.crop=32",
                                    "task=segment"], ["task=segment", "dataset=folder"]),
    "missing_data": (lambda tmp: ["dataset=mnist", f"dataset.root={tmp / 'nothing'}"], ["mnist", "not found"]),
    "corrupt_image": (lambda tmp: ["dataset=folder", f"dataset.root={_corrupt_images(tmp / 'img')}", "dataset.crop=32"],
                      ["bad.png", "corrupt"]),
}


@pytest.mark.parametrize("case", list(ORPHAN_CASES))
def test_mistakes_found_before_a_run_folder_exists(case, tmp_path, capsys, monkeypatch):
    make, words = ORPHAN_CASES[case]
    data = tmp_path / "data"
    data.mkdir()
    args = make(data)
    work = tmp_path / "work"
    work.mkdir()
    rc, lines, _ = run_main(["train", *ANY_DATA, *SHORT, *args], capsys, work, monkeypatch)
    one_line(rc, lines, 2, *words)
    assert list(work.iterdir()) == [], "a run folder was made for a run that cannot start"


@pytest.mark.long
def test_a_failure_after_the_folder_exists_removes_or_marks_it(tmp_path, capsys, monkeypatch):
    """What only shows once Hydra has made the folder: an empty one goes, one with more is marked failed."""
    import skipbench.train.loop as loop
    from skipbench.errors import DataError

    def fail(*args, **kwargs):
        raise DataError("planted failure")

    monkeypatch.setattr(loop, "build", fail)
    rc, lines, _ = run_main(["train", *QUICK, f"hydra.run.dir={tmp_path / 'a' / 'run'}"], capsys, tmp_path, monkeypatch)
    one_line(rc, lines, 2, "planted failure")
    assert not (tmp_path / "a").exists(), "the folders this run made are removed again"

    monkeypatch.undo()
    monkeypatch.setattr(loop, "start_tensorboard", fail)  # after run_info.json is written
    run = tmp_path / "run2"
    rc, lines, _ = run_main(["train", *QUICK, f"hydra.run.dir={run}"], capsys, tmp_path, monkeypatch)
    one_line(rc, lines, 2, "planted failure")
    assert _strict(run / "metrics.json") == {"status": "failed", "error": "planted failure"}


# ------------------------------------------------------------------ 4. one line for every fault
LONG = "x" * 100_000
ONE_LINERS = {
    "seed_overflow": (["seed=99999999999999999999"], ["seed=99999999999999999999", "2**32"]),
    "dataset_seed_overflow": (["dataset.seed=-1"], ["dataset.seed=-1"]),
    "long_value": ([f"model.name={LONG}"], ["characters cut"]),
    "long_root": (["dataset=folder", f"dataset.root=/{LONG}"], ["characters cut"]),
    "unicode_unquoted": (["dataset=folder", "dataset.root=/data/données"], ["données", "quote", "'key=\"value\"'"]),
    "unicode_key": (["modèle=unet"], ["modèle", "quote"]),
    "unknown_model": (["model.name=bogus"], ["unknown model 'bogus'", "unet_concat"]),
    "warmup_ge_max_steps": (["scheduler=cosine", "scheduler.warmup_steps=4"], ["scheduler.warmup_steps=4",
                                                                               "trainer.max_steps (4)"]),
    "plus_unknown_key": (["+trainer.max_step=100"], ["unknown key 'trainer.max_step'", "known: max_steps"]),
    "plus_unknown_top_key": (["+foo=1"], ["unknown key 'foo'", "known: model"]),
    "plus_target": (["++model._target_=os.system"], ["unknown key 'model._target_'"]),
    "empty_run_dir": (["hydra.run.dir="], ["hydra.run.dir is empty"]),
    "empty_run_dir_quoted": (["hydra.run.dir=''"], ["hydra.run.dir is empty"]),
}


@pytest.mark.parametrize("case", list(ONE_LINERS))
def test_one_line_errors(case, tmp_path, capsys, monkeypatch):
    extra, words = ONE_LINERS[case]
    rc, lines, _ = run_main(["train", *ANY_DATA, *SHORT, *extra], capsys, tmp_path, monkeypatch)
    line = one_line(rc, lines, 2, "skipbench train: error:", *words)
    assert len(line) < 500, len(line)
    assert list(tmp_path.iterdir()) == []


def test_full_error_shows_the_trace(tmp_path, monkeypatch):
    from skipbench.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError, match="seed="):
        main(["train", *QUICK, "seed=99999999999999999999"])


def _mount(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.decode().strip()}")


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.long
def test_read_only_folders(base_run, tmp_path, capsys, monkeypatch):
    """A read-only file system (root ignores file modes, so a real ro mount is used)."""
    mnt = tmp_path / "ro"
    _mount(mnt, "4m")
    try:
        shutil.copytree(base_run, mnt / "run")
        (mnt / "work").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        before = snapshot(mnt / "run")
        rc, lines, _ = run_main(["train", f"resume={mnt / 'run'}", "trainer.max_steps=6"], capsys, tmp_path, monkeypatch)
        one_line(rc, lines, 2, "read-only")
        assert snapshot(mnt / "run") == before
        rc, lines, _ = run_main(["train", *QUICK], capsys, mnt / "work", monkeypatch)  # default outputs/ in a ro cwd
        one_line(rc, lines, 2, "read-only", "hydra.run.dir=")
    finally:
        _umount(mnt)


def test_disk_full_keeps_the_previous_checkpoint(base_run, tmp_path, capsys, monkeypatch):
    """A real full disk: the save at step 6 fails, the step-4 checkpoint stays whole, no temp file is left."""
    mnt = tmp_path / "full"
    _mount(mnt, "2m")
    try:
        run = mnt / "run"
        shutil.copytree(base_run, run)
        free = shutil.disk_usage(mnt).free
        (mnt / "filler").write_bytes(b"\0" * max(0, free - 150_000))  # room for logs, not for a checkpoint
        rc, lines, _ = run_main(["train", f"resume={run}", "trainer.max_steps=6"], capsys, tmp_path, monkeypatch)
        one_line(rc, lines, 1, "No space left on device", "last checkpoint is kept")
        assert load_checkpoint(run / CHECKPOINT)["step"] == 4
        assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    finally:
        _umount(mnt)


# ------------------------------------------------------------------ 5. silent mistakes, strict JSON
def _strict(path: Path) -> dict:
    def no_constants(name):
        raise ValueError(f"{path} holds {name}: not strict JSON")

    return json.loads(path.read_text(), parse_constant=no_constants)


@pytest.mark.long
def test_diverged_run_exits_3_with_strict_json(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    rc, lines, _ = run_main(["train", *QUICK, "optimizer.lr=1e30", "trainer.log_every=1", f"hydra.run.dir={run}"],
                            capsys, tmp_path, monkeypatch)
    one_line(rc, lines, 3, "diverged", "metrics.json")
    m = _strict(run / "metrics.json")
    assert m["status"] == "diverged" and "training loss is" in m["error"]
    assert m["final_train_loss"] is None


@pytest.mark.long
def test_diverged_job_does_not_stop_a_sweep(tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "sweep"
    rc, lines, _ = run_main(["train", "-m", "optimizer.lr=1e30,1e-3", *QUICK, "trainer.log_every=1",
                             f"hydra.sweep.dir={sweep}"], capsys, tmp_path, monkeypatch)
    assert rc == 1, lines  # the sweep went on, then its exit code says not every job completed
    status = sorted(_strict(p)["status"] for p in sweep.glob("*/metrics.json"))
    assert status == ["completed", "diverged"]
    assert any("1 completed" in line and "1 diverged" in line for line in lines), lines


# ------------------------------------------------------------------ signals (real processes)
@pytest.mark.long
def test_signals_at_start_up_and_in_the_loop(tmp_path):
    """Ctrl-C at several moments of start-up (imports, composing, building) and SIGTERM, side by side.
    Whatever moment a signal lands in, the outcome is one line and 130 (143), or a finished run."""
    long = [*TINY, "trainer.max_steps=100000", "trainer.eval_every=100000"]
    # From 0.8 s: before that the interpreter itself may still be starting (no skipbench code has run),
    # and a Ctrl-C there is Python's own; on this busy 2-core machine that took up to ~0.5 s.
    plans = [(signal.SIGINT, 0.8), (signal.SIGINT, 1.6), (signal.SIGINT, 3.0), (signal.SIGTERM, 2.2),
             (signal.SIGTERM, "loop")]
    procs = []
    for i, (sig, when) in enumerate(plans):
        run_dir = tmp_path / f"run{i}"
        procs.append((sig, when, run_dir, time.time(), start_cli(["train", *long, f"hydra.run.dir={run_dir}"], tmp_path)))
    for sig, when, run_dir, t0, proc in procs:
        if when == "loop":  # once the loop runs: it stops after the step, saves, exits 143
            deadline = time.time() + 200
            while time.time() < deadline and not (run_dir / "run_info.json").exists():
                time.sleep(0.1)
            time.sleep(0.5)
        else:
            time.sleep(max(0.0, t0 + when - time.time()))
        proc.send_signal(sig)
    for sig, when, run_dir, _, proc in procs:
        res = finish(proc)
        lines = [line for line in res.stderr.splitlines() if line.strip()]
        assert "Traceback" not in res.stderr + res.stdout, describe(res)
        assert res.returncode == 128 + sig, (when, describe(res))
        assert len(lines) == 1 and "interrupted" in lines[0], (when, describe(res))
        if when == "loop":
            m = _strict(run_dir / "metrics.json")
            assert m["status"] == "interrupted" and m["signal"] == "SIGTERM"
            assert load_checkpoint(run_dir / CHECKPOINT)["step"] == m["steps"]
        else:
            assert not run_dir.exists() or (run_dir / CHECKPOINT).exists(), sorted(os.listdir(run_dir))


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.1, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0])
def test_ctrl_c_at_any_moment(delay, tmp_path):
    run_dir = tmp_path / "run"
    proc = start_cli(["train", *QUICK, f"hydra.run.dir={run_dir}"], tmp_path)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    res = finish(proc)
    assert "Traceback" not in res.stderr + res.stdout, describe(res)
    if res.returncode == 0:  # it finished before the signal came
        assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    else:
        assert res.returncode == 130, describe(res)
        assert len([line for line in res.stderr.splitlines() if line.strip()]) == 1, describe(res)


@pytest.mark.long
def test_kill_9_leaves_no_stale_lock(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_cli(["train", *TINY, "trainer.max_steps=100000", f"hydra.run.dir={run_dir}"], tmp_path)
    deadline = time.time() + 200
    while time.time() < deadline and not (run_dir / ".hydra").exists():
        time.sleep(0.1)
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):  # held while the run lives
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc.kill()
        proc.wait()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and free the moment it dies
    finally:
        os.close(fd)


@pytest.mark.slow
def test_kill_9_at_a_random_step_then_resume_is_bit_identical(tmp_path):
    common = [*TINY, "trainer.max_steps=40", "trainer.eval_every=5", "trainer.log_every=5"]
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    straight_proc = start_cli(["train", *common, f"hydra.run.dir={straight}"], tmp_path)
    proc = start_cli(["train", *common, f"hydra.run.dir={killed}"], tmp_path)
    target = random.Random().randrange(5, 36)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (killed / CHECKPOINT).exists():
            try:
                if load_checkpoint(killed / CHECKPOINT)["step"] >= target // 5 * 5:
                    break
            except Exception:
                pass
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert finish(straight_proc).returncode == 0
    res = finish(start_cli(["train", f"resume={killed}"], tmp_path))
    assert res.returncode == 0, describe(res)
    a, b = load_checkpoint(killed / CHECKPOINT), load_checkpoint(straight / CHECKPOINT)
    assert a["step"] == b["step"] == 40
    for k in b["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
