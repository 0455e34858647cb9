"""Shared helpers: composing configs in-process, tiny models, the CLI in-process or in a subprocess,
and one tiny sweep shared by the whole session."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import skipbench.config as sbconfig
from skipbench.models import MODELS, build_model

# Tiny models are fastest on one thread, and far less sensitive to a busy 2-core machine
# (OpenMP worker threads spinning against other processes cost seconds per step).
torch.set_num_threads(1)

# Small everywhere: these are about behaviour, not about learning anything.
TINY = [
    "dataset.train_size=64",
    "dataset.val_size=16",
    "model.width=4",
    "trainer.batch_size=8",
    "trainer.progress=false",
]

CLI = [sys.executable, "-m", "skipbench.cli"]
CLI_TIMEOUT = 240

# The registry's keys, not list_models(): nothing under test may run at import (mutmut's forced-fail
# run makes every function of the mutated modules raise, which would break collection).
MODEL_NAMES = sorted(n for n, v in MODELS.items() if v.skeleton == "encdec")  # the conv skeleton's
MLP_NAMES = sorted(n for n, v in MODELS.items() if v.skeleton == "mlp")  # the fully connected skeleton's


def compose(overrides: list[str] | None = None, config_name: str = "train"):
    """Compose the shipped ``train`` config with Hydra's compose API (no run folder, no job)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    sbconfig.register_configs()
    with initialize_config_dir(config_dir=str(sbconfig.config_dir()), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides or []))


def group_options(group: str) -> list[str]:
    """The options of a config group, as files in ``configs/<group>/``."""
    return sorted(p.stem for p in (sbconfig.config_dir() / group).glob("*.yaml"))


def tiny_model(name: str, **kwargs) -> torch.nn.Module:
    kw = {"width": 4, "depth": 3, "in_channels": 1, "out_channels": 1}
    kw.update(kwargs)
    return build_model(name, **kw)


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)  # the CLI must print one-line errors, not traces
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    env["OMP_NUM_THREADS"] = "1"  # see torch.set_num_threads(1) above; lets subprocesses run side by side
    return env


def run_cli(args: list[str], cwd: Path, timeout: int = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout
    )


def start_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """Start the CLI without waiting (to run independent subprocesses side by side)."""
    return subprocess.Popen(
        [*CLI, *args], cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen, timeout: int = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"CLI timed out after {timeout}s: {proc.args}\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def describe(res: subprocess.CompletedProcess) -> str:
    return f"rc={res.returncode}\n--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}"


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def event_files(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).rglob("events.out.tfevents*"))


def load_events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    return ea


@pytest.fixture(autouse=True)
def _no_hydra_leftovers():
    """Each test starts with no global Hydra state (compose/initialize leave none, but be sure)."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def job_dir(sweep: Path, *overrides: str) -> Path:
    """The one job folder of a sweep whose overrides include all ``overrides`` (e.g. ``model=resnet``)."""
    import yaml

    found = [d for d in Path(sweep).iterdir() if (d / ".hydra" / "overrides.yaml").is_file()
             and set(overrides) <= set(yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text()))]
    assert len(found) == 1, f"{overrides}: {[d.name for d in Path(sweep).iterdir()]}"
    return found[0]


# One real sweep through the CLI for the whole session: the multirun, report and task tests all
# read it, instead of each starting its own.
SWEEP_MODELS = ("autoencoder", "unet_concat")
SWEEP_TASKS = ("reconstruct", "denoise", "segment", "classify")


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``train -m model=autoencoder,unet_concat task=reconstruct,denoise,segment,classify``, 4 steps each:
    returns the sweep folder and the finished process (its cwd is the sweep folder's parent)."""
    cwd = tmp_path_factory.mktemp("tiny_sweep")
    sweep = cwd / "sweep"
    res = run_cli(["train", "-m", f"model={','.join(SWEEP_MODELS)}", f"task={','.join(SWEEP_TASKS)}", *TINY,
                   "trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2", "trainer.num_threads=1",
                   f"hydra.sweep.dir={sweep}"], cwd=cwd)
    return sweep, res


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """``skipbench.cli.main(argv)`` in this process: ``(exit code, stdout, stderr)``; a ``SystemExit``
    (Hydra's ``--help``) counts as its code."""
    from skipbench.cli import main

    saved = os.environ.pop("HYDRA_FULL_ERROR", None)  # the CLI must print one-line errors, not traces
    argv_before = list(sys.argv)  # the CLI hands sys.argv to Hydra and leaves it changed
    try:
        code = main(list(argv))
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
    finally:
        sys.argv = argv_before
        if saved is not None:
            os.environ["HYDRA_FULL_ERROR"] = saved
    out, err = capsys.readouterr()
    return code, out, err


@contextlib.contextmanager
def fails_if_blocked(what: str, seconds: int = 30):
    """A reader that blocks (a FIFO opened for reading) fails the test instead of hanging the suite."""
    def hung(signum, frame):
        raise TimeoutError(f"blocked: {what}")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
