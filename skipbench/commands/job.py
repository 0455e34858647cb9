"""The Hydra side of ``train`` and ``probe``: check a single run before Hydra makes its folder, then
the task function Hydra calls for each job, with its exit-code policy.

The task function is the one caller of the training loop that knows Hydra: it reads the launcher's
share of the cores, the config-group choices and the provenance, and hands them to the loop in a
:class:`~skipbench.train.context.RunContext`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..config import config_dir, register_configs
from ..errors import RunFolderError, SkipbenchError
from ..run_folder import (CHECKPOINT, COMPLETED, CONFIG, DIVERGED, FAILED, HYDRA_CONFIG, HYDRA_DIR, INTERRUPTED, METRICS,
                          OVERRIDES, PROBE, headline_value)
from .exits import fail, one_line
from .overrides import check_added_keys, quote

log = logging.getLogger("skipbench")

_WANTS_TRACE = [False]  # HYDRA_FULL_ERROR=1 from the user (we set it for Hydra ourselves)
_PRECHECKED = [False]  # precheck() validated the single run Hydra is about to start


def hydra_app(task: Callable, config_name: str) -> Callable[[], None]:
    import hydra

    register_configs()
    return hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)(task)


def run_hydra(command: str, app: Callable[[], None], args: list[str], check: bool = False) -> int:
    """Run a Hydra app on ``args`` (``check``: :func:`precheck` a single run first); the exit code."""
    user_wants_trace = _WANTS_TRACE[0] = os.environ.get("HYDRA_FULL_ERROR") == "1"
    prog = sys.argv[0]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    try:
        pinned = (precheck(command, args) if command == "train" else precheck_probe(args)) if check else []
        if pinned is None:
            return 0  # nothing to do (said why)
        sys.argv = [prog, *args, *pinned]  # argv[0] stays the executable: Hydra names completion after it
        from ..sweep import SweepRefused

        try:
            app()
        except SweepRefused as refused:  # the sweep folder's contract, checked before Hydra wrote into it
            raise refused.error from None
        except BaseException as ex:  # Ctrl-C, SIGTERM, a launcher's error: a sweep still says what it left
            from ..launcher import LaunchError
            from ..sweep import stopped_early

            stopped_early(submitted=not isinstance(ex, LaunchError))  # a refusal submitted nothing
            raise
    finally:
        sys.argv = [prog]
        _PRECHECKED[0] = False
        if not user_wants_trace:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    from ..sweep import take_outcome

    outcome = take_outcome()  # left by the sweep's callback (configs/train.yaml: hydra.callbacks)
    return 1 if outcome is not None and not outcome.ok else 0  # a job of the sweep did not complete


def precheck(config_name: str, args: list[str]) -> list[str] | None:
    """Check a single run completely before Hydra makes its run folder; then make and lock that folder.

    Returns the overrides that pin Hydra to the checked folder (``None``: nothing to do, a resume of a
    completed run). Only for plain overrides: flags (``--cfg``, ``--help``, ``-m`` ...) go straight to Hydra.
    """
    if any(a.startswith("-") for a in args):
        return []
    from omegaconf import open_dict

    from ..run_lock import claim_run_folder
    from ..train.checkpoint import resolve_resume
    from ..train.validate import check_runnable

    cfg, run_dir = compose_run(config_name, args)
    with open_dict(cfg):
        del cfg["hydra"]
        if cfg.resume == "auto":  # this folder's own checkpoint if it has one, else a fresh run
            cfg.resume = resolve_resume("auto", run_dir) if run_dir is not None else None
    check_added_keys(cfg, args)
    done = completed_as_configured(cfg) if cfg.resume else None
    state = {"step": done} if done is not None else check_runnable(cfg, cfg.resume)
    _PRECHECKED[0] = True  # the run's one validation: the task function does not repeat it
    if state is not None and state["step"] >= cfg.trainer.max_steps:
        print(f"skipbench train: resume={cfg.resume}: the run already completed (step {state['step']} of "
              f"trainer.max_steps={cfg.trainer.max_steps}); nothing to do, nothing changed (raise "
              "trainer.max_steps to train on)", file=sys.stderr)
        return None
    if run_dir is None:
        return []
    folder = claim_run_folder(run_dir, resume=bool(cfg.resume))
    pinned = [f"hydra.run.dir={quote(str(folder.path))}"]
    if cfg.resume:
        pinned.append("hydra.output_subdir=null")  # written by the task once the checkpoint has loaded
    return pinned


def completed_as_configured(cfg: Any) -> int | None:
    """The steps of the run ``cfg.resume`` names when it completed at least ``trainer.max_steps`` steps
    with exactly this config (its ``.hydra/config.yaml``, ``resume`` aside), else None.

    Then resuming it does nothing, and that is known from two small files: no data set is built, no
    model, no checkpoint read and torch never imported (a no-op resume took ~11 s, most of it torch's
    import and its first meta-device op). Anything else -- a changed key, an interrupted run, an
    unreadable file -- goes through the full check, which says what is wrong.
    """
    from omegaconf import OmegaConf

    from ..run_folder import UnreadableFile, read_yaml

    path = Path(str(cfg.resume)).expanduser()
    run_dir = path if path.is_dir() else path.parent
    summary = finished(run_dir, cfg.trainer.max_steps)
    if summary is None or summary.get("status") != COMPLETED or not (run_dir / CHECKPOINT).is_file():
        return None
    try:
        saved = read_yaml(run_dir / CONFIG)
    except UnreadableFile:
        return None
    now = OmegaConf.to_container(cfg, resolve=False)
    if not isinstance(saved, dict):
        return None
    saved.pop("resume", None)
    now.pop("resume", None)
    return int(summary["steps"]) if saved == now else None


def compose_run(config_name: str, args: list[str]) -> tuple[Any, Path | None]:
    """The config of a single run (its ``hydra`` node included) and the folder Hydra would make for it
    (None where only a real job can resolve it)."""
    from ..config import compose_config, planned_run_dir

    cfg = compose_config(args, config_name, hydra=True)
    return cfg, planned_run_dir(cfg)


def precheck_probe(args: list[str]) -> list[str]:
    """A single probe's folder, made and locked before Hydra writes into it: never a training run's (nor
    another probe's) folder. Returns the override that pins Hydra to it."""
    from ..run_lock import claim_run_folder

    if any(a.startswith("-") for a in args):
        return []
    _, run_dir = compose_run("train", args)
    if run_dir is None:
        return []
    folder = claim_run_folder(run_dir, resume=False)
    return [f"hydra.run.dir={quote(str(folder.path))}"]


def objective(summary: dict | None, sweeper_target: str = "") -> float | None:
    """What the task function returns to Hydra: the run's headline metric, higher is better (final val
    PSNR, mIoU or accuracy), for sweepers that optimise (set them to maximise, see README). A failed or
    diverged run returns what the sweeper counts as a failed trial: ``None`` for Optuna (trial state
    FAIL, the study goes on; a NaN would abort it), NaN for the others (Nevergrad scores NaN as its
    worst loss; a ``None`` would raise a TypeError)."""
    if summary and summary.get("status") == COMPLETED:
        value = headline_value(summary)
        if value is not None and math.isfinite(value):
            return float(value)
    return None if "optuna" in sweeper_target else math.nan


def launcher_threads(launcher: Any, cores: int | None = None) -> int | None:
    """Torch CPU threads for a job of a parallel sweep: the cores shared out, so jobs do not
    oversubscribe them (2 jobs x 2 threads on 2 cores run at half the speed of 2 x 1).

    Read from what the launcher's config says, not its name: ``n_jobs`` (joblib: processes on this
    machine, -1 = all cores) or ``cpus_per_task`` (submitit: the cores a job was given).
    """
    cores = cores or os.cpu_count() or 1
    if "n_jobs" in launcher:
        n_jobs = launcher.get("n_jobs") or 1
        n_jobs = cores + 1 + n_jobs if n_jobs < 0 else n_jobs
        return max(1, cores // max(1, n_jobs))
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    return None


def job_context(cfg, hc) -> Any:
    """What the loop is told about this Hydra job: device, thread share, chosen options, provenance."""
    from ..provenance import provenance
    from ..train.context import RunContext

    choices = {f"choice.{g}": str(v) for g, v in hc.runtime.choices.items()
               if not g.startswith(("hydra", "schema")) and v is not None}
    return RunContext.local(cfg, threads=launcher_threads(hc.launcher), choices=choices, info=provenance())


def train_task(cfg) -> float | None:
    """Hydra's task function for ``skipbench train``: one job, checked, built, trained."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ..run_lock import claim_run_folder
    from ..sweep import mark_in_job, watch_parent

    wall_start = time.perf_counter()
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    sweep = hc.mode == RunMode.MULTIRUN
    folder = None
    summary = None
    sweeper = str(hc.sweeper.get("_target_", ""))
    if "optuna" in sweeper and "maximize" not in str(hc.sweeper.get("direction")):
        log.warning("the Optuna sweeper minimises by default, and this job returns its "
                    "val metric (higher is better): add hydra.sweeper.direction=maximize")
    try:
        if sweep:  # a single run was checked and its folder locked before Hydra made it
            check_added_keys(cfg, list(hc.overrides.task))
            done = finished(run_dir, cfg.trainer.max_steps)
            if done is not None:  # a sweep run again: a finished job is reused, not one byte rewritten
                summary = done
                return objective(summary, sweeper)
            if (run_dir / PROBE).exists():  # a probe sweep's folder: never trained over
                raise RunFolderError(f"{run_dir}: holds a probe ({PROBE}), not a training run; train into "
                                     "another hydra.sweep.dir")
            folder = claim_run_folder(run_dir, resume=True)
            watch_parent()  # a worker of a parallel sweep dies with the sweep (kill -9 included)
            mark_in_job(True)
        from ..train.checkpoint import resolve_resume  # torch: not imported for a sweep whose jobs are all done
        from ..train.loop import build, fit
        from ..train.validate import check_runnable

        checked, _PRECHECKED[0] = _PRECHECKED[0] and not sweep, False  # checked before Hydra made the folder
        # A sweep job continues from its own folder's checkpoint (interrupted, killed, requeued) if it has one.
        resume = resolve_resume(cfg.resume if cfg.resume or not sweep else "auto", run_dir)
        if not checked:
            check_runnable(cfg, resume)
        context = job_context(cfg, hc)
        run = build(cfg, resume, context)
        save_hydra_files(cfg, hc, run_dir)  # the checkpoint has loaded: now the folder may change
        summary = fit(run, run_dir, context, wall_start)
    except Exception as ex:
        job_failed(ex, hc, run_dir, sweep, held=folder is not None)
    else:
        job_finished(summary, hc, run_dir, sweep)
    finally:
        mark_in_job(False)
        if folder is not None:
            folder.release()  # a long sweep must not hold one descriptor per finished job
    return objective(summary, sweeper)


def finished(run_dir: Path, max_steps: int) -> dict | None:
    """The summary of a job folder whose run is over for good -- completed (or diverged) with at least
    ``max_steps`` steps -- or None: a job to resume (interrupted, killed, failed, or ``max_steps`` grew) or run."""
    from ..run_folder import UnreadableFile, read_json

    try:
        summary = read_json(run_dir / METRICS)
    except UnreadableFile:
        return None
    if not isinstance(summary, dict):
        return None
    steps = summary.get("steps")
    if summary.get("status") == DIVERGED:
        return summary  # it would diverge again: the same seed, the same steps
    if summary.get("status") == COMPLETED and isinstance(steps, int) and steps >= max_steps:
        return summary
    return None


def job_failed(ex: Exception, hc, run_dir: Path, sweep: bool, held: bool = True) -> None:
    """A single run leaves with its one line and exit code; a sweep's job fails alone and the sweep goes on.
    ``held``: this job holds its folder (a job refused its folder writes nothing into it: another's)."""
    from ..run_folder import write_json

    if not sweep:
        if _WANTS_TRACE[0]:
            raise ex
        # Our one line here (a bug re-raises: its traceback is what a report needs); SystemExit passes
        # Hydra's job wrapper, which would print a line of its own for an exception.
        raise SystemExit(fail("train", ex)) from None
    if isinstance(ex, SkipbenchError):  # one bad combination in a sweep fails alone
        print(f"skipbench train: job {hc.job.num} ({','.join(hc.overrides.task)}): error: {one_line(str(ex))}",
              file=sys.stderr)
    else:
        log.exception("job %s crashed; the sweep goes on", hc.job.num)
    if not held:
        return
    write_json(run_dir / METRICS, {"status": FAILED, "error": f"{type(ex).__name__}: {ex}"
                                   if not isinstance(ex, SkipbenchError) else str(ex)})


def job_finished(summary: dict, hc, run_dir: Path, sweep: bool) -> None:
    """An interrupted run stops the whole command (130 / 143); a diverged single run exits 3."""
    if summary["status"] == INTERRUPTED:
        print(f"skipbench train: interrupted ({summary.get('signal')}) at step {summary['steps']}, checkpoint saved; "
              f"continue with: skipbench train resume={run_dir}", file=sys.stderr)
        # Ctrl-C stops the whole sweep too, not just this job; SIGTERM (a scheduler's stop) says so.
        raise SystemExit(143 if summary.get("signal") == "SIGTERM" else 130)
    if summary["status"] == DIVERGED:
        print(f"skipbench train: {'job ' + str(hc.job.num) + ': ' if sweep else ''}the run diverged "
              f"({summary.get('error')}); see {run_dir / METRICS}", file=sys.stderr)
        if not sweep:
            raise SystemExit(3)  # a sweep goes on: its other jobs are what it is for


def save_hydra_files(cfg, hc, run_dir: Path) -> None:
    """On resume Hydra is told not to write ``.hydra/`` (a resume that fails must leave the folder as it
    was); once the checkpoint has loaded, write what Hydra would have, so a later resume sees these overrides."""
    if hc.output_subdir is not None or not cfg.resume:
        return
    write_hydra_files(cfg, hc, hc.overrides.task, run_dir)


def write_hydra_files(cfg, hc, overrides, run_dir: Path) -> None:
    """``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` as Hydra writes them (what marks a
    run folder for the report and a resume)."""
    from omegaconf import OmegaConf

    (run_dir / HYDRA_DIR).mkdir(exist_ok=True)
    OmegaConf.save(cfg, run_dir / CONFIG)
    OmegaConf.save(OmegaConf.create({"hydra": OmegaConf.to_container(hc)}), run_dir / HYDRA_CONFIG)
    OmegaConf.save(OmegaConf.create(list(overrides)), run_dir / OVERRIDES)


def probe_task(cfg) -> None:
    """Hydra's task function for ``skipbench probe``: never into a training run's folder; a probe sweep run
    again keeps the probes it has."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from ..claims.probes import probe_run, probe_summary
    from ..run_lock import claim_run_folder

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    if hc.mode == RunMode.MULTIRUN:
        if (run_dir / PROBE).is_file():
            print(f"skipbench probe: {run_dir}: probed already, kept as it is", file=sys.stderr)
            return
        claim_run_folder(run_dir, resume=False)  # a training job's folder: refused in one line
    print(probe_summary(probe_run(cfg, run_dir), run_dir))
