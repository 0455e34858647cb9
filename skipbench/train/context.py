"""What the caller of the training loop decides about where a run executes, handed to the loop as given.

The loop knows nothing of Hydra, launchers or git: the CLI's task function (which knows the launcher
and the config-group choices) or the Python API fills a :class:`RunContext`; :meth:`RunContext.local`
is the default for a run started from Python with nothing else known.
"""

from __future__ import annotations

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
