"""What skipbench adds to hydra-submitit-launcher's launchers (``hydra/launcher=slurm`` and ``local``).

The launcher classes themselves are thin subclasses of the plugin's, in
``hydra_plugins/skipbench_launcher/`` (Hydra instantiates launchers only from the ``hydra_plugins``
package), named by ``_target_`` in ``configs/hydra/launcher/``. On top of the plugin they

- ask for GPUs only when the run will use them (``gpus_per_node: null`` = decide from ``trainer.device``);
- refuse, before submitting, a request the partition cannot ever run (read with ``scontrol``/``sinfo``),
  and turn an ``sbatch`` refusal into one line naming the setting to change;
- add ``resume=auto`` to every job, so a job that SLURM requeues (preemption, ``scontrol requeue``, time
  limit) continues from its own checkpoint in its own folder;
- wait for every job even when some fail or are cancelled, and record those in their ``metrics.json``
  (the sweep's summary line and exit code come from :mod:`skipbench.sweep`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf, open_dict

from .errors import ConfigError
from .run_folder import CANCELLED, COMPLETED, FAILED, METRICS

log = logging.getLogger(__name__)


class LaunchError(ConfigError):
    """A launcher setting the cluster cannot satisfy; one line naming the setting."""


# ---------------------------------------------------------------- what the partition allows
def _slurm(*args: str) -> str | None:
    """Output of a SLURM client command, or None where SLURM's commands are not installed / answer not."""
    if not shutil.which(args[0]):
        return None
    try:
        res = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def _minutes(value: str) -> float | None:
    """SLURM's time ``[D-]HH:MM:SS``, ``MM:SS`` or ``MM`` in minutes; None for UNLIMITED/INFINITE."""
    if not value or value.upper() in ("UNLIMITED", "INFINITE", "NONE"):
        return None
    days, _, rest = value.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    h, m, s = ([0] * (3 - len(parts)) + parts) if len(parts) > 1 else (0, parts[0], 0)
    return (int(days or 0) * 24 + h) * 60 + m + s / 60


def partition_limits(partition: str | None) -> dict[str, Any] | None:
    """Limits of ``partition`` (None: the default one) from ``scontrol`` and ``sinfo``; None if unknown.

    Keys: name, max_time_min, max_nodes, cpus (per node), mem_mb (per node), gpus (per node).
    """
    out = _slurm("scontrol", "show", "partition", "--oneliner")
    if out is None:
        return None
    parts = [dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in out.splitlines() if line.strip()]
    names = [p.get("PartitionName", "") for p in parts]
    chosen = [p for p in parts if p.get("PartitionName") == partition] if partition else \
        [p for p in parts if p.get("Default") == "YES"]
    if not chosen:
        if partition:
            raise LaunchError(f"hydra.launcher.partition={partition}: no such partition; known: {', '.join(names)}")
        return None  # no default partition: sbatch will say so
    p = chosen[0]
    nodes = _slurm("sinfo", "--noheader", "--Node", "--partition", p["PartitionName"], "--format", "%c|%m|%G") or ""
    cpus, mem, gpus = 0, 0, 0
    for line in nodes.split():
        c, m, gres = (line.split("|") + ["", ""])[:3]
        cpus, mem = max(cpus, int(c.rstrip("+") or 0)), max(mem, int(m.rstrip("+") or 0))
        gpus = max(gpus, sum(int(n) for n in re.findall(r"gpu(?::[^:,(]+)?:(\d+)", gres)))
    limit = lambda key: None if p.get(key, "UNLIMITED") == "UNLIMITED" else int(p[key])  # noqa: E731
    max_cpus, max_mem = limit("MaxCPUsPerNode"), limit("MaxMemPerNode")
    return {"name": p["PartitionName"], "max_time_min": _minutes(p.get("MaxTime", "")),
            "max_nodes": limit("MaxNodes") or int(p.get("TotalNodes", 0)) or None,
            "cpus": min(cpus, max_cpus) if max_cpus else cpus, "mem_mb": min(mem, max_mem) if max_mem else mem,
            "gpus": gpus}


def fit_request(params: dict[str, Any], device: str, limits: dict[str, Any] | None) -> None:
    """Fill ``gpus_per_node: null`` from ``trainer.device`` and refuse what ``limits`` forbid (in place)."""
    if params.get("gpus_per_node") is None:
        # cpu: none. cuda: one. auto: one where the partition has GPUs (the run then uses CUDA), else none.
        wants = {"cpu": 0, "cuda": 1}.get(device, 1 if limits and limits["gpus"] else 0)
        params["gpus_per_node"] = wants
        if wants and limits and not limits["gpus"]:
            raise LaunchError(f"trainer.device={device}: partition '{limits['name']}' has no GPUs; "
                              "use trainer.device=cpu or another hydra.launcher.partition")
    if not limits:
        return
    where = f"partition '{limits['name']}'"
    asked = [
        ("timeout_min", params.get("timeout_min"), limits["max_time_min"], "min (MaxTime)"),
        ("nodes", params.get("nodes"), limits["max_nodes"], "nodes"),
        ("cpus_per_task", (params.get("cpus_per_task") or 1) * (params.get("tasks_per_node") or 1), limits["cpus"],
         "CPUs per node (cpus_per_task x tasks_per_node)"),
        ("mem_gb", params.get("mem_gb") and params["mem_gb"] * 1024, limits["mem_mb"], "MB per node"),
        ("gpus_per_node", params.get("gpus_per_node"), limits["gpus"], "GPUs per node"),
    ]
    for key, value, most, unit in asked:
        if value and most is not None and value > most:
            shown = params[key]
            fix = f"a lower hydra.launcher.{key} or another hydra.launcher.partition"
            if key == "gpus_per_node" and not most:
                fix = "hydra.launcher.gpus_per_node=0 with trainer.device=cpu, or another hydra.launcher.partition"
            raise LaunchError(f"hydra.launcher.{key}={shown}: {where} allows at most {most:g} {unit}; use {fix}")


# sbatch's refusals -> the launcher key to change
_SBATCH_HINTS = [
    (r"partition", "partition"),  # first: a partition may well be called "gpu"
    (r"gres|gpu", "gpus_per_node (or gres)"),
    (r"time limit", "timeout_min"),
    (r"memory|mem", "mem_gb"),
    (r"node configuration|cpu|processor", "cpus_per_task"),
    (r"account", "account"),
    (r"qos", "qos"),
]


def describe_sbatch_error(text: str) -> str:
    """``sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification`` ->
    one line with the reason and the launcher key to change."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "unknown error")
    reason = re.sub(r"^(sbatch: )?(error: )?(Batch job submission failed: )?", "", reason)
    key = next((k for pattern, k in _SBATCH_HINTS if re.search(pattern, reason, re.IGNORECASE)), None)
    fix = f"; change hydra.launcher.{key}" if key else ""
    return f"sbatch refused the jobs: {reason}{fix}"


# ---------------------------------------------------------------- the launchers
def _state_to_status(state: str) -> str:
    return CANCELLED if state.startswith(("CANCELLED", "PREEMPTED")) else FAILED


def _last_error_line(text: str) -> str:
    """The line of a job's stderr that says what went wrong (an exception, an error, the last line)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^([\w.]+(Error|Exception)|srun: error|slurmstepd: error|error)\b", ln, re.IGNORECASE):
            return ln
    return lines[-1] if lines else ""


def record_unfinished(job_dir: Path, status: str, error: str, overrides: Sequence[str] = ()) -> None:
    """Mark ``job_dir/metrics.json`` with ``status`` (keeping what the job wrote, if anything). A job that
    never reached Python also gets its ``overrides``, so a re-run of the sweep finds this folder
    (:func:`skipbench.run_names.job_dir_name`) instead of starting a second one beside it."""
    from .run_folder import OVERRIDES, UnreadableFile, read_json, write_json

    path = job_dir / METRICS
    try:
        metrics = read_json(path) if path.exists() else {}
    except UnreadableFile:
        metrics = {}
    metrics = metrics if isinstance(metrics, dict) else {}
    if metrics.get("status") == COMPLETED:
        return  # finished its work; only submitit's bookkeeping was lost
    job_dir.mkdir(parents=True, exist_ok=True)
    if overrides and not (job_dir / OVERRIDES).exists():
        from omegaconf import OmegaConf

        (job_dir / OVERRIDES).parent.mkdir(exist_ok=True)
        OmegaConf.save(OmegaConf.create([str(o) for o in overrides]), job_dir / OVERRIDES)
    write_json(path, {**metrics, "status": status, "error": error})


_OVER = ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
         "TIMEOUT", "REVOKED", "SPECIAL_EXIT")


class _SacctOnce(logging.Filter):
    """Without accounting, submitit warns "Bypassing sacct error" at every poll: say it once."""

    said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Bypassing sacct error" not in record.getMessage():
            return True
        if self.said:
            return False
        self.said = True
        record.msg, record.args = "sacct does not answer (no SLURM accounting?): job states come from squeue", ()
        return True


def _squeue_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """``{job id: state}`` from squeue (which keeps ended jobs for MinJobAge); None if squeue fails."""
    out = _slurm("squeue", "--noheader", "--states=all", "--array", "--format=%i %T", "--jobs", ",".join(job_ids))
    if out is None:
        return None
    return dict(line.split()[:2] for line in out.splitlines() if len(line.split()) >= 2)


def wait_for_slurm_jobs(jobs: Sequence[Any], poll_s: float = 2.0) -> dict[str, str]:
    """Wait until every job has a result or has ended; returns the final SLURM state of those that ended
    without one (cancelled, killed, lost). Polls every ``poll_s`` (submitit backs off up to a minute)
    and falls back to squeue where sacct knows nothing (no accounting), where submitit would wait forever."""
    import time

    if not any(isinstance(f, _SacctOnce) for f in logging.getLogger("submitit").filters):
        logging.getLogger("submitit").addFilter(_SacctOnce())
    pending, ended, missing_since = list(jobs), {}, {}
    # sacct prints its own complaint at every call where accounting is off: ask once, quietly
    accounting = bool(jobs) and _slurm("sacct", "--noheader", "--jobs", jobs[0].job_id) is not None
    if jobs and not accounting:
        log.warning("sacct does not answer (no SLURM accounting?): job states come from squeue")
    while pending:
        if accounting:
            pending[0].watcher.update()  # one sacct call for the whole array
        sacct = {j.job_id: j.watcher.get_state(j.job_id, mode="cache") if accounting else "UNKNOWN" for j in pending}
        unknown = [i for i, state in sacct.items() if state == "UNKNOWN"]
        queued = _squeue_states(unknown) if unknown else {}
        still = []
        for job in pending:
            if job.paths.result_pickle.exists():
                continue
            state = sacct[job.job_id]
            if state == "UNKNOWN" and queued is not None:
                state = queued.get(job.job_id, "UNKNOWN")
                if state == "UNKNOWN":  # in neither sacct nor squeue: gone (or not listed yet)
                    missing_since.setdefault(job.job_id, time.monotonic())
                    if time.monotonic() - missing_since[job.job_id] > 60:
                        state = "LOST"
            if state.startswith("COMPLETED"):
                continue  # its result file may lag behind on a network file system: submitit waits for it
            if state.split()[0].upper() in (*_OVER, "LOST"):
                ended[job.job_id] = state
            else:
                still.append(job)
        pending = still
        if pending:
            time.sleep(poll_s)
    return ended


class Accounting:
    """Mixin over the plugin's launchers: ``resume=auto`` per job, every job waited for and recorded."""

    _EXECUTOR: str

    def _fit(self) -> None:
        """Adjust/check ``self.params`` before submission (SLURM only)."""

    def _job_dir(self, overrides: Sequence[str], job_num: int) -> Path:
        from hydra.core.hydra_config import HydraConfig

        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg.hydra.job):
            cfg.hydra.job.num = job_num
        # The job folder's name may use ${hydra:...} (the task choice): resolve it as the job itself
        # would, with this job's config as the HydraConfig, then put the launcher's back.
        hydra_config, saved = HydraConfig.instance(), HydraConfig.instance().cfg
        try:
            hydra_config.set_config(cfg)
            return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
        finally:
            hydra_config.cfg = saved

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        self._fit()
        # A job SLURM starts again continues from its own checkpoint (the user's resume=... wins).
        job_overrides = [list(o) if any(x.split("=", 1)[0].lstrip("+~") == "resume" for x in o)
                         else [*o, "resume=auto"] for o in job_overrides]
        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in params.items()})

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, sweep_dir)
        nums = range(initial_job_idx, initial_job_idx + len(job_overrides))
        for num, overrides in zip(nums, job_overrides):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
        from hydra.core.singleton import Singleton

        args = [(list(o), "hydra.sweep.dir", n, f"job_id_for_{n}", Singleton.get_state())
                for n, o in zip(nums, job_overrides)]
        sbatch_said = io.StringIO()  # submitit prints sbatch's stderr itself; we say it in one line
        try:
            with contextlib.redirect_stderr(sbatch_said):
                jobs = executor.map_array(self, *zip(*args))
        except submitit.core.utils.FailedJobError as ex:
            raise LaunchError(describe_sbatch_error(str(ex) or sbatch_said.getvalue())) from None
        try:
            ended = wait_for_slurm_jobs(jobs) if self._EXECUTOR == "slurm" else {}
        except KeyboardInterrupt:
            if self._EXECUTOR == "slurm":  # Ctrl-C stops the waiting, not the jobs
                ids = sorted({j.job_id.split("_")[0] for j in jobs})
                print(f"skipbench train: the jobs keep running on SLURM (stop them with: scancel {' '.join(ids)})",
                      file=sys.stderr)
            raise
        return [self._collect(job, overrides, num, ended.get(job.job_id))
                for job, overrides, num in zip(jobs, job_overrides, nums)]

    def _collect(self, job, overrides: Sequence[str], num: int, ended_as: str | None) -> JobReturn:
        """The job's result; a job that failed outside Python, was cancelled or lost is recorded in its folder."""
        import submitit

        try:
            if ended_as and not job.paths.result_pickle.exists():
                raise submitit.core.utils.UncompletedJobError(ended_as)  # over, no result: submitit would wait
            return job.results()[0]
        except submitit.core.utils.UncompletedJobError as ex:
            state = ended_as or job.state or "UNKNOWN"
            failed_in_job = isinstance(ex, submitit.core.utils.FailedJobError)
            err = _last_error_line(job.stderr() or "") if failed_in_job or not state.startswith("CANCELLED") else ""
            status = FAILED if failed_in_job else _state_to_status(state)
            error = f"SLURM state {state}" + (f": {err}" if err else "") + f" (log: {job.paths.stderr})"
            job_dir = self._job_dir(overrides, num)
            record_unfinished(job_dir, status, error, overrides)
            log.debug("job %d (%s): %s: %s", num, " ".join(filter_overrides(overrides)), status, error)
            return JobReturn(overrides=list(overrides), working_dir=str(job_dir), status=JobStatus.COMPLETED,
                             _return_value=None)


def fit_slurm_request(launcher: Accounting) -> None:
    """The SLURM launcher's ``_fit``: GPUs from ``trainer.device``, the partition's limits checked."""
    limits = partition_limits(launcher.params.get("partition"))
    fit_request(launcher.params, str(launcher.config.trainer.device), limits)


def call_with_requeue_after_stop(call: Callable[[], Any]) -> Any:
    """Run a job so that SLURM's warning before the time limit (SIGUSR2, ``signal_delay_s`` ahead) stops
    training the way SIGTERM does -- finish the step, save the checkpoint, write metrics, close
    TensorBoard -- and only then lets submitit's handler requeue the job (left alone, that handler
    exits the process at once, mid-step, losing the steps since the last checkpoint)."""
    requeue = signal.getsignal(signal.SIGUSR2)  # submitit's checkpoint_and_try_requeue
    warned: list[int] = []

    def stop_first(signum: int, frame: Any) -> None:
        warned.append(signum)
        os.kill(os.getpid(), signal.SIGTERM)  # the training loop's StopFlag: save and stop after this step

    if callable(requeue):
        signal.signal(signal.SIGUSR2, stop_first)
    try:
        return call()
    except SystemExit:  # the job stopped (exit 130): now requeue it; submitit exits the process itself
        if warned and callable(requeue):
            requeue(signal.SIGUSR2, None)
        raise
