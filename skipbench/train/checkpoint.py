"""Atomic writes and exact resume.

Everything a run writes that a crash could tear (checkpoint, metrics.json) goes to a temporary file
in the same folder first and is then renamed over the old one (``os.replace`` is atomic on POSIX and
Windows), so a checkpoint on disk is always a whole one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    atomic_write(path, write)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def find_checkpoint(resume: str) -> Path:
    """``resume`` is a run folder or a checkpoint file; raises :class:`ConfigError` (one line) if none."""
    from ..config import ConfigError

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
    # Our own files, holding only tensors, numbers, strings and plain containers.
    return torch.load(path, map_location=map_location, weights_only=True)
