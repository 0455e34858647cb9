"""What ``skipbench reproduce`` may spend: the seeds' looks and the wall-clock budget, from
``configs/reproduce/default.yaml`` (or ``--config FILE``), checked before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import config_dir
from ..errors import ConfigError
from .sequential import SPENDING, Schedule

KEYS = {"seeds": ("start", "step", "max"), "alpha": (), "spending": (), "budget_min": ()}


@dataclass(frozen=True)
class Budget:
    schedule: Schedule  # the looks (start, start + step, ..., max seeds) and the alpha spent over them
    minutes: float  # wall clock for the whole call; no claim is grown past it

    @property
    def seconds(self) -> float:
        return 60.0 * self.minutes


def default_file() -> Path:
    return config_dir() / "reproduce" / "default.yaml"


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r}: must be an integer")
    return value


def load_budget(path: Path | None = None, max_seeds: int | None = None, minutes: float | None = None) -> Budget:
    """The budget of ``path`` (default: :func:`default_file`), with the command line's ``--max-seeds`` and
    ``--budget-min`` on top. One-line :class:`ConfigError` naming the key for anything wrong."""
    from ..run_folder import UnreadableFile, read_yaml

    path = Path(path) if path is not None else default_file()
    try:
        raw = read_yaml(path)
    except UnreadableFile as ex:
        raise ConfigError(str(ex)) from None  # names the file
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: not a mapping of {', '.join(KEYS)}")
    unknown = sorted(set(raw) - set(KEYS)) + sorted(
        f"seeds.{k}" for k in set(raw.get("seeds") or {}) - set(KEYS["seeds"]) if isinstance(raw.get("seeds"), dict))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; known: seeds.start, seeds.step, seeds.max, "
                          f"alpha, spending, budget_min")
    seeds = raw.get("seeds") or {}
    if not isinstance(seeds, dict):
        raise ConfigError(f"seeds={seeds!r}: must be a mapping with start, step, max")
    start = _int("seeds.start", seeds.get("start", 3))
    step = _int("seeds.step", seeds.get("step", 3))
    top = _int("--max-seeds" if max_seeds is not None else "seeds.max",
               max_seeds if max_seeds is not None else seeds.get("max", 9))
    alpha = raw.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ConfigError(f"alpha={alpha!r}: must be a number strictly between 0 and 1")
    spending = raw.get("spending", "pocock")
    if spending not in SPENDING:
        raise ConfigError(f"spending={spending!r}: allowed: {', '.join(SPENDING)}")
    schedule = Schedule(start=start, step=step, max_seeds=top, alpha=float(alpha), spending=str(spending))
    key = "--budget-min" if minutes is not None else "budget_min"
    budget = minutes if minutes is not None else raw.get("budget_min", 60)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ConfigError(f"{key}={budget!r}: must be a number of minutes > 0")
    return Budget(schedule, float(budget))
