"""Short run names: a sweep job's folder names only the overrides that vary across the sweep.

``configs/train.yaml`` names a sweep job ``<num>_<task>_<model>[_<key=value,...>]`` through the
``skipbench_varying`` resolver: the ``key=value`` part lists this job's overrides of the keys the
sweep varies (read from the sweep's ``multirun.yaml``, which Hydra's basic sweeper writes before
the first job), so ``-m model=a,b trainer.max_steps=200`` gives ``0_denoise_a``, not
``0_model=a,trainer.max_steps=200``. Where the sweep's overrides cannot be read (another sweeper)
every override is listed, as Hydra's ``override_dirname`` would.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from .run_folder import sweep_params, sweep_task_overrides

ALWAYS_SHOWN = ("model", "task")  # already in the name


@lru_cache(maxsize=8)
def sweep_keys(sweep_dir: str) -> frozenset[str] | None:
    """Keys a sweep varies (``model``, ``seed``, ``optimizer.lr``), or None if unknown."""
    params = sweep_params(Path(sweep_dir))
    if params is None:  # no multirun.yaml (another sweeper), or one we cannot read: show everything
        return None
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        args = [f"{k}={v}" for k, v in params.items()] + sweep_task_overrides(Path(sweep_dir))
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception:  # overrides we cannot parse: show everything
        return None
    return frozenset(o.key_or_group for o in overrides if o.is_sweep_override())


def varying_overrides(sweep_dir: str, overrides: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """``"_seed=1,optimizer.lr=0.01"``: this job's overrides of the keys the sweep varies ("" if none)."""
    keys = sweep_keys(str(sweep_dir))
    items = []
    for item in overrides:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if key in ALWAYS_SHOWN or key in exclude or (keys is not None and key not in keys):
            continue
        items.append(f"{key}={value}")
    return "_" + ",".join(items) if items else ""


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("model_label"):  # model=custom: the run's label from model.target
        from .models.custom import label

        OmegaConf.register_new_resolver("model_label", label)
    if not OmegaConf.has_resolver("skipbench_varying"):
        OmegaConf.register_new_resolver("skipbench_varying", lambda d, o, e=(): varying_overrides(d, o, _list(e)))


def _list(v: Any) -> list[str]:
    return [str(x) for x in v] if v is not None else []


register_resolvers()  # at import: a joblib / submitit worker resolves the job's folder name too
