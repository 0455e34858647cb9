"""A sweep folder's contract, and the outcome of a sweep: one line at its end, and the CLI's exit code.

:class:`SweepSummary` is a Hydra callback (``hydra.callbacks`` in ``configs/train.yaml``), so it runs
with every launcher (basic, joblib, submitit local/slurm, sweepers that optimise).

When the sweep starts (before Hydra writes anything into the folder) it locks the sweep folder, so two
sweeps into one folder cannot mix, and -- when the folder already holds a sweep -- refuses, in one
line, a sweep that is not the same experiment (a setting other than the swept keys changed): a sweep
run again or grown into its folder skips finished jobs, resumes interrupted ones and runs the missing
ones (the jobs themselves decide: :func:`skipbench.commands.job.train_task`). It also tells the sweep's
worker processes its pid, so they die with it (:func:`watch_parent`).

When the sweep ends it reads each job folder's ``metrics.json``, marks a job that left none as
``lost``, prints a line per job that did not complete and one summary line (with how many jobs were
reused, resumed and run when the folder held jobs before), and keeps the outcome for ``skipbench.cli``
to turn into the exit code (Hydra's callbacks cannot fail a run themselves: it catches their exceptions).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .errors import ConfigError, SkipbenchError
from .run_folder import CHECKPOINT, COMPLETED, HYDRA_LOG, LOST, METRICS, OVERRIDES, STATUSES

REUSED, RESUMED, RAN = "reused", "resumed", "run"  # what this sweep did with each job
SWEEP_PID = "SKIPBENCH_SWEEP_PID"  # host:pid of the sweep's main process, for its workers

ORDER = STATUSES  # the order the summary line counts them in


@dataclass
class Outcome:
    sweep_dir: Path
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # one line per job that did not complete
    origins: Counter = field(default_factory=Counter)  # reused / resumed / run, where the folder held jobs

    @property
    def ok(self) -> bool:
        return set(self.counts) <= {COMPLETED}

    def line(self) -> str:
        n = sum(self.counts.values())
        parts = [f"{self.counts[s]} {s}" for s in (*ORDER, *sorted(set(self.counts) - set(ORDER))) if self.counts[s]]
        origins = (f" ({', '.join(f'{self.origins[o]} {o}' for o in (REUSED, RESUMED, RAN))})"
                   if self.origins[REUSED] or self.origins[RESUMED] else "")
        return (f"sweep: {n} job{'s' * (n != 1)}: {', '.join(parts) or 'none ran'}{origins}; "
                f"report: skipbench report {self.sweep_dir}")


_last: Outcome | None = None


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders of a sweep: where Hydra saved the job's overrides, or where the launcher recorded a job
    that never got that far (a SLURM job that failed before Python started)."""
    if not sweep_dir.is_dir():
        return []
    return sorted((d for d in sweep_dir.iterdir() if (d / OVERRIDES).is_file()
                   or (d / METRICS).is_file()), key=lambda d: (len(d.name), d.name))


Snapshot = dict[str, tuple[int | None, bool]]  # job folder name -> (metrics.json mtime_ns, had a checkpoint)


def snapshot(sweep_dir: Path) -> Snapshot:
    """What each job folder held before the sweep: to tell reused, resumed and run jobs apart after it."""
    out = {}
    for d in job_dirs(Path(sweep_dir)):
        try:
            mtime = (d / METRICS).stat().st_mtime_ns
        except OSError:
            mtime = None
        out[d.name] = (mtime, (d / CHECKPOINT).is_file())
    return out


def origin(d: Path, before: Snapshot) -> str:
    """``reused`` (its summary untouched), ``resumed`` (from the checkpoint it had) or ``run``."""
    if d.name not in before:
        return RAN
    mtime, had_checkpoint = before[d.name]
    try:
        now = (d / METRICS).stat().st_mtime_ns
    except OSError:
        now = None
    if mtime is not None and now == mtime:
        return REUSED
    return RESUMED if had_checkpoint else RAN


def planned_jobs(config: DictConfig) -> list[list[str]] | None:
    """The overrides of every job the sweep will launch, as Hydra's basic sweeper expands them (None
    for another sweeper: an optimising one decides its trials as it goes)."""
    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = config.hydra.sweeper.get("params") or {}
        args = [f"{k}={v}" for k, v in params.items()] + [str(o) for o in config.hydra.overrides.task]
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
    except Exception:  # Hydra's internals moved, or overrides it will refuse itself: no plan
        return None
    return [list(job) for batch in batches for job in batch]


def never_started(sweep_dir: Path, planned: list[list[str]], master: dict[str, Any]) -> list[list[str]]:
    """The planned jobs that have no folder in the sweep (the sweep stopped, or died, before them)."""
    from .run_names import job_folders, job_key, same_job

    folders = job_folders(Path(sweep_dir))
    return [job for job in planned
            if not any(same_job(job_key(job), master, folder, theirs) for folder, theirs in folders)]


def summarize(sweep_dir: Path, before: Snapshot | None = None, planned: list[list[str]] | None = None,
              master: dict[str, Any] | None = None, write: bool = True) -> Outcome:
    """Count the jobs' statuses; a job folder without a readable ``metrics.json`` is recorded as lost
    (``write``: in that file too), and so is a ``planned`` job that never started (in the summary: it
    has no folder; a re-run of the sweep runs it). ``before``: the folder's :func:`snapshot` when the
    sweep started (counts reused/resumed/run); ``master``: the sweep's config, to match planned jobs."""
    from .run_folder import UnreadableFile, read_json, write_json

    out = Outcome(Path(sweep_dir))
    for d in job_dirs(out.sweep_dir):
        if before:
            out.origins[origin(d, before)] += 1
        try:
            metrics: dict[str, Any] = read_json(d / METRICS)
            if not isinstance(metrics, dict):
                raise UnreadableFile(f"{d / METRICS}: not an object")
        except UnreadableFile:
            metrics = {"status": LOST, "error": f"no {METRICS} when the sweep ended: the job was killed "
                                                f"before it could write one (see {HYDRA_LOG} and .submitit/)"}
            if write:
                write_json(d / METRICS, metrics)
        status = str(metrics.get("status", LOST))
        out.counts[status] += 1
        if status != COMPLETED:
            why = metrics.get("error") or (f"stopped at step {metrics['steps']}/{metrics.get('max_steps', '?')}"
                                           if "steps" in metrics else "")
            out.problems.append(f"{d.name}: {status}" + (f": {why}" if why else ""))
    for job in never_started(out.sweep_dir, planned, master or {}) if planned else []:
        out.counts[LOST] += 1
        out.problems.append(f"{' '.join(job)}: {LOST}: never started (run the sweep again to run it)")
    return out


class SweepRefused(BaseException):
    """A sweep refused when it starts. Not an ``Exception``: Hydra turns a callback's exceptions into
    warnings; :func:`skipbench.commands.job.run_hydra` raises the one-line error inside."""

    def __init__(self, error: SkipbenchError) -> None:
        super().__init__(str(error))
        self.error = error


# ---------------------------------------------------------------- one experiment per sweep folder
def swept_keys(cfg: dict[str, Any]) -> set[str]:
    """Keys a sweep's (master) config sweeps: ``hydra.sweeper.params`` and the sweep overrides it was given."""
    from .run_names import parse_sweep_keys

    hydra = cfg.get("hydra") or {}
    params = (hydra.get("sweeper") or {}).get("params") or {}
    task = (hydra.get("overrides") or {}).get("task") or []
    keys = parse_sweep_keys({str(k): str(v) for k, v in params.items()}, [str(o) for o in task])
    return set(keys) if keys is not None else set()


def _global_group(key: str) -> bool:
    """A config group whose options write anywhere in the config (``experiment``: ``@package _global_``)."""
    from .config import config_dir

    folder = config_dir() / key
    return folder.is_dir() and any("@package _global_" in p.read_text(errors="ignore")[:500]
                                   for p in folder.glob("*.yaml"))


def experiment_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first setting in which two sweeps' master configs (``multirun.yaml``) differ, other than the keys
    either sweeps and :data:`~skipbench.run_names.FREE_KEYS`: ``"trainer.max_steps=8 here, 4 there"``."""
    from .run_folder import flat_items
    from .run_names import FREE_KEYS, _value, job_key, setting

    swept = swept_keys(old) | swept_keys(new)

    def overrides(cfg: dict[str, Any]) -> dict[str, str]:
        task = ((cfg.get("hydra") or {}).get("overrides") or {}).get("task") or []
        return {k: v for k, v in job_key([str(o) for o in task]).items() if k not in swept}

    def show(v: Any) -> str:
        return "(not set)" if v is None else str(v)

    mine, theirs = overrides(new), overrides(old)
    for key in sorted(mine.keys() | theirs.keys()):  # given on either command line: a group choice too
        a = _value(mine[key]) if key in mine else setting(new, key)
        b = _value(theirs[key]) if key in theirs else setting(old, key)
        if a != b:
            return f"{key}={show(a)} here, {show(b)} in the sweep already there"
    if any(_global_group(k) for k in swept):  # a swept preset may set anything: the overrides were all to compare
        return None
    task_items = lambda cfg: dict(flat_items({k: v for k, v in cfg.items() if k != "hydra"}, builders=True))  # noqa: E731
    a_items, b_items = task_items(new), task_items(old)
    for key in sorted(a_items.keys() | b_items.keys()):
        if key in FREE_KEYS or any(key == k or key.startswith(k + ".") for k in swept):
            continue
        if a_items.get(key) != b_items.get(key):
            return f"{key}={show(a_items.get(key))} here, {show(b_items.get(key))} in the sweep already there"
    return None


def check_same_experiment(sweep_dir: Path, config: DictConfig) -> None:
    """Refuse (one line) a sweep into a folder that holds a sweep of another experiment."""
    from omegaconf import OmegaConf

    from .run_folder import read_multirun

    old = read_multirun(sweep_dir)
    if old is None:
        return
    diff = experiment_difference(old, OmegaConf.to_container(config, resolve=False))
    if diff:
        raise ConfigError(f"hydra.sweep.dir={sweep_dir}: {diff}; a sweep folder holds one experiment, only the "
                          "swept keys may change (run it with the same settings, or choose another hydra.sweep.dir)")


# ---------------------------------------------------------------- workers die with their sweep
_watching: list[bool] = [False]
_in_job: list[bool] = [False]


def mark_in_job(busy: bool) -> None:
    """A job runs in this process now (the watchdog lets it save its checkpoint before the process goes)."""
    _in_job[0] = busy


def watch_parent(poll_s: float = 0.5, grace_s: float = 20.0) -> bool:
    """In a worker process of a sweep (joblib, submitit local), die with the sweep's main process.

    kill -9 of the main process leaves its workers to init: a thread notices (the parent pid changes,
    polled every ``poll_s``), stops a running job as SIGTERM does (it finishes the step and saves its
    checkpoint, marked interrupted: a re-run of the sweep resumes it), then ends the process -- at once
    when idle, after at most ``grace_s`` otherwise. Polling, not ``PR_SET_PDEATHSIG``: that fires when
    the *thread* that started the worker ends, which in a pool may be long before the process does.
    Returns whether a watchdog runs (only where this process's parent is the sweep's main process)."""
    here = f"{socket.gethostname()}:"
    sweep = os.environ.get(SWEEP_PID, "")
    if _watching[0] or not sweep.startswith(here) or not sweep[len(here):].isdigit():
        return _watching[0]
    parent = int(sweep[len(here):])
    if os.getpid() == parent or os.getppid() != parent:
        return False

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        if _in_job[0]:
            os.kill(os.getpid(), signal.SIGTERM)  # the training loop's StopFlag: save, mark interrupted
            end = time.monotonic() + grace_s
            while _in_job[0] and time.monotonic() < end:
                time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="skipbench-parent-watch", daemon=True).start()
    _watching[0] = True
    return True


# ---------------------------------------------------------------- the callback
@dataclass
class Started:
    """A sweep this process started: its folder as it was, the jobs it plans, its config."""

    sweep_dir: Path
    before: Snapshot
    planned: list[list[str]] | None
    master: dict[str, Any]

    def outcome(self, write: bool = True) -> Outcome:
        return summarize(self.sweep_dir, self.before, self.planned, self.master, write)


_started: dict[str, Started] = {}  # by sweep folder (absolute)


def print_outcome(out: Outcome) -> None:
    for problem in out.problems:
        print(f"  {problem}", file=sys.stderr)
    print(out.line(), file=sys.stderr)


def stopped_early(submitted: bool = True) -> None:
    """The sweep stopped before its end (Ctrl-C, SIGTERM, a launcher's error): its line all the same,
    the jobs it never started counted lost (nothing is written: a worker may still be saving).

    ``submitted=False``: the launcher refused the sweep before it started a job (a request beyond the
    partition): there is no outcome to tell, only the refusal's one line."""
    for key in list(_started):
        started = _started.pop(key)
        if submitted:
            print_outcome(started.outcome(write=False))


class SweepSummary(Callback):
    """Locks and checks the sweep folder when the sweep starts; prints the sweep's outcome when it ends
    (the CLI reads it with :func:`take_outcome`)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from .run_lock import claim_sweep_folder

        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        try:
            claim_sweep_folder(sweep_dir)  # held to the end of the command (skipbench.cli releases it)
            check_same_experiment(sweep_dir, config)
        except SkipbenchError as ex:
            raise SweepRefused(ex) from None
        from omegaconf import OmegaConf

        _started[str(sweep_dir)] = Started(Path(str(config.hydra.sweep.dir)), snapshot(sweep_dir),
                                           planned_jobs(config), OmegaConf.to_container(config, resolve=False))
        os.environ[SWEEP_PID] = f"{socket.gethostname()}:{os.getpid()}"  # inherited by the workers

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _last
        sweep_dir = Path(str(config.hydra.sweep.dir))
        started = _started.pop(str(sweep_dir.absolute()), None)
        _last = started.outcome() if started else summarize(sweep_dir)
        os.environ.pop(SWEEP_PID, None)
        print_outcome(_last)


def take_outcome() -> Outcome | None:
    """The outcome of the sweep that just ended in this process (None if none did), once."""
    global _last
    out, _last = _last, None
    return out


from .api_modules import make_callable  # noqa: E402

make_callable(__name__)  # skipbench.sweep(...) is skipbench.api.sweep (see skipbench/api_modules.py)
