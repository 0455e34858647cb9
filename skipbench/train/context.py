"""What the caller of the training loop decides about where a run executes, handed to the loop as given.

The loop knows nothing of Hydra, launchers or git: the CLI's task function (which knows the launcher
and the config-group choices) or the Python API fills a :class:`RunContext`; :meth:`RunContext.local`
is the default for a run started from Python with nothing else known.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when present, else the CPU; any other name as torch reads it."""
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@dataclass
class RunContext:
    """Where and how a run executes; none of it changes what the run computes."""

    device: torch.device  # the device policy applied (``trainer.device=auto`` resolved)
    threads: int | None = None  # torch CPU threads when trainer.num_threads is unset (None: torch's default)
    info: dict[str, Any] = field(default_factory=dict)  # provenance for run_info.json (versions, git, argv)
    choices: dict[str, str] = field(default_factory=dict)  # config-group options chosen, for HParams

    @classmethod
    def local(cls, cfg: DictConfig, **kwargs: Any) -> "RunContext":
        """This process, no launcher: the device from ``trainer.device``, provenance collected here."""
        from ..provenance import provenance

        kwargs.setdefault("info", provenance())
        return cls(device=resolve_device(cfg.trainer.device), **kwargs)


def contention_hint(steps_per_s: float, device: torch.device, threads: int,
                    load: float | None = None, cores: int | None = None) -> str | None:
    """One line when the CPU this run trains on is oversubscribed (the 1-minute load average above 1.5x
    the cores), naming ``trainer.num_threads``; None otherwise, or off the CPU. ``load``/``cores``: as
    measured (the machine's own when None)."""
    if device.type != "cpu":
        return None
    try:
        load = os.getloadavg()[0] if load is None else load
    except OSError:  # no load average on this platform
        return None
    cores = cores or os.cpu_count() or 1
    if load <= 1.5 * cores:
        return None
    return (f"note: {steps_per_s:.2g} steps/s with {threads} torch thread{'s' if threads != 1 else ''} while the load "
            f"average is {load:.1f} on {cores} cores: other jobs compete for them; trainer.num_threads=1 "
            f"(or fewer parallel jobs) is often several times faster on a busy machine")
