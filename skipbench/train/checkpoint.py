"""Atomic writes and exact resume.

Everything a run writes that a crash could tear (checkpoint, metrics.json) goes to a temporary file
in the same folder first and is then renamed over the old one (``os.replace`` is atomic on POSIX and
Windows), so a checkpoint on disk is always a whole one: a full disk fails the new one (its temporary
file is removed) and leaves the previous one as it was.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, ConfigError
from ..run_folder import CHECKPOINT, REQUIRED_STATE, atomic_write

if TYPE_CHECKING:
    import torch
# torch is imported where a checkpoint is read or written, not here: finding one (resume=..., a no-op
# resume of a completed run) must not cost torch's import (2-5 s).


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    def write(tmp: str) -> None:
        # Through a Python file: a full disk is then an OSError (ENOSPC), not torch's opaque RuntimeError.
        with open(tmp, "wb") as f:
            try:
                torch.save(state, f)
            except RuntimeError as ex:  # torch's zip writer fails again while closing the torn file
                if isinstance(ex.__context__, OSError):
                    raise ex.__context__ from None
                raise

    atomic_write(path, write)


def find_checkpoint(resume: str) -> Path:
    """``resume`` is a run folder or a checkpoint file; raises :class:`ConfigError` (one line) if none."""
    p = Path(resume).expanduser()
    candidate = p / CHECKPOINT if p.is_dir() else p
    if not candidate.is_file():
        raise ConfigError(f"resume={resume}: no {CHECKPOINT} there yet (the run stopped before its first "
                          "eval, or this is not a run folder); start it again without resume")
    return candidate


def resolve_resume(resume: str | None, run_dir: Path) -> str | None:
    """``resume=auto``: this run folder's own checkpoint if it has one (a job that SLURM requeued or
    preempted and starts again), else a fresh start. Any other value is returned as it is."""
    if resume != "auto":
        return resume
    return str(run_dir) if (Path(run_dir) / CHECKPOINT).is_file() else None


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """A skipbench checkpoint; :class:`CheckpointError` (one line) if it is corrupt, truncated or foreign.

    ``weights_only=True``: only tensors, numbers, strings and plain containers are unpickled, so a
    malicious file cannot run code.
    """
    import torch

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says enough
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as ex:
        raise CheckpointError(f"{path}: cannot read it ({ex.strerror or ex})") from None
    except Exception as ex:  # zip, pickle and torch errors alike: all say "not a whole checkpoint of ours"
        why = " ".join(str(ex).split())
        if "WeightsUnpickler error:" in why:  # past torch's paragraph about weights_only defaults
            why = why.split("WeightsUnpickler error:", 1)[1].split(" Check the documentation")[0].strip()
        why = why[:160] + "..." if len(why) > 160 else why
        raise CheckpointError(f"{path}: not a readable skipbench checkpoint (corrupt, truncated or foreign: "
                              f"{type(ex).__name__}: {why})") from None
    missing = [k for k in REQUIRED_STATE if k not in state] if isinstance(state, dict) else list(REQUIRED_STATE)
    if missing:
        raise CheckpointError(f"{path}: not a skipbench checkpoint (no {', '.join(missing)} in it)")
    return state
