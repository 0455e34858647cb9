"""The outcome of a sweep: one line at its end, and the CLI's exit code.

:class:`SweepSummary` is a Hydra callback (``hydra.callbacks`` in ``configs/train.yaml``), so it runs
after every launcher (basic, joblib, submitit local/slurm, sweepers that optimise). It reads each job
folder's ``metrics.json``, marks a job that left none as ``lost``, prints a line per job that did not
complete and one summary line, and keeps the outcome for ``skipbench.cli`` to turn into the exit code
(Hydra's callbacks cannot fail a run themselves: it catches their exceptions).
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .run_folder import COMPLETED, HYDRA_LOG, LOST, METRICS, OVERRIDES, STATUSES

ORDER = STATUSES  # the order the summary line counts them in


@dataclass
class Outcome:
    sweep_dir: Path
    counts: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # one line per job that did not complete

    @property
    def ok(self) -> bool:
        return set(self.counts) <= {COMPLETED}

    def line(self) -> str:
        n = sum(self.counts.values())
        parts = [f"{self.counts[s]} {s}" for s in (*ORDER, *sorted(set(self.counts) - set(ORDER))) if self.counts[s]]
        return (f"sweep: {n} job{'s' * (n != 1)}: {', '.join(parts) or 'none ran'}; "
                f"report: skipbench report {self.sweep_dir}")


_last: Outcome | None = None


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job folders of a sweep: where Hydra saved the job's overrides, or where the launcher recorded a job
    that never got that far (a SLURM job that failed before Python started)."""
    if not sweep_dir.is_dir():
        return []
    return sorted((d for d in sweep_dir.iterdir() if (d / OVERRIDES).is_file()
                   or (d / METRICS).is_file()), key=lambda d: (len(d.name), d.name))


def summarize(sweep_dir: Path) -> Outcome:
    """Count the jobs' statuses; a job folder without a readable ``metrics.json`` is recorded as lost."""
    from .run_folder import UnreadableFile, read_json, write_json

    out = Outcome(Path(sweep_dir))
    for d in job_dirs(out.sweep_dir):
        try:
            metrics: dict[str, Any] = read_json(d / METRICS)
            if not isinstance(metrics, dict):
                raise UnreadableFile(f"{d / METRICS}: not an object")
        except UnreadableFile:
            metrics = {"status": LOST, "error": f"no {METRICS} when the sweep ended: the job was killed "
                                                f"before it could write one (see {HYDRA_LOG} and .submitit/)"}
            write_json(d / METRICS, metrics)
        status = str(metrics.get("status", LOST))
        out.counts[status] += 1
        if status != COMPLETED:
            why = metrics.get("error") or (f"stopped at step {metrics['steps']}/{metrics['max_steps']}"
                                           if "steps" in metrics else "")
            out.problems.append(f"{d.name}: {status}" + (f": {why}" if why else ""))
    return out


class SweepSummary(Callback):
    """Prints the sweep's outcome when the sweep ends; the CLI reads it with :func:`take_outcome`."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _last
        _last = summarize(Path(str(config.hydra.sweep.dir)))
        for problem in _last.problems:
            print(f"  {problem}", file=sys.stderr)
        print(_last.line(), file=sys.stderr)


def take_outcome() -> Outcome | None:
    """The outcome of the sweep that just ended in this process (None if none did), once."""
    global _last
    out, _last = _last, None
    return out


from .api_modules import make_callable  # noqa: E402

make_callable(__name__)  # skipbench.sweep(...) is skipbench.api.sweep (see skipbench/api_modules.py)
