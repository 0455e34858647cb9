"""The run-folder contract: what ``skipbench train`` writes into a run folder and what reads it back.

One place for the names both sides must agree on -- the training loop, the CLI, the launchers and the
sweep summary write them; ``skipbench report`` and the claims read them:

* the statuses a run's ``metrics.json`` can hold;
* the files of a run folder (``metrics.json``, ``checkpoint.pt``, ``.hydra/...``, event files, ...);
* the TensorBoard tag format of the per-layer diagnostics, each formatter next to its parser::

      grad_norm/03_enc1/conv2      kind / level / layer: level 3 of the skeleton, main-path conv 2
      grad_level/03_enc1           kind / level (log10 of the level's gradient norm)
      loss/mse/train               the loss named in the tag, so an MSE and a CE run never share a chart

* the summary's keys (``final_<metric>``, ``best_<metric>``), the checkpoint's keys, the sweep folder's
  ``multirun.yaml``;
* the config keys that never define a group of runs.

Also how its files are written: atomically (a temporary file, fsync, rename), as strict JSON.

Imports nothing heavy (no torch, no matplotlib, no Hydra): the CLI and the report load it at start-up.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

# ---------------------------------------------------------------- statuses (metrics.json "status")
COMPLETED, INTERRUPTED, DIVERGED, FAILED = "completed", "interrupted", "diverged", "failed"
CANCELLED = "cancelled"  # a scheduler cancelled or preempted the job (skipbench.launcher)
LOST = "lost"  # the job left no metrics.json when its sweep ended (skipbench.sweep)
INCOMPLETE = "incomplete"  # no metrics.json yet: still running or killed (the report's word, never written)
FAILURES = (DIVERGED, FAILED)  # ended for good without completing
STATUSES = (COMPLETED, FAILED, DIVERGED, INTERRUPTED, CANCELLED, LOST)  # in the order a sweep counts them

# ---------------------------------------------------------------- files
METRICS = "metrics.json"  # the run's summary, written atomically when it ends (status and final values)
CHECKPOINT = "checkpoint.pt"
PROBE = "probe.json"  # what `skipbench probe` measured, instead of training
LESION = "lesion.json"  # what `skipbench analyze lesion` measured on the trained checkpoint
LANDSCAPE = "landscape.json"  # what `skipbench analyze landscape` measured on the trained checkpoint
HYDRA_DIR = ".hydra"
CONFIG = Path(HYDRA_DIR) / "config.yaml"
HYDRA_CONFIG = Path(HYDRA_DIR) / "hydra.yaml"
OVERRIDES = Path(HYDRA_DIR) / "overrides.yaml"
HYDRA_LOG = "train.log"  # Hydra's job log (hydra.job.name is "train")
EVENTS_PREFIX = "events.out.tfevents"  # TensorBoard event files: <prefix>.<second>.<host>.<pid>.<n>


def event_file_second(name: str) -> int | None:
    """The second an event file was opened (``events.out.tfevents.1700000000.host.12.0`` -> 1700000000)."""
    parts = name.split(".")
    return int(parts[3]) if name.startswith(EVENTS_PREFIX + ".") and len(parts) > 3 and parts[3].isdigit() else None


def run_info_name(step: int) -> str:
    """``run_info.json`` of a fresh run; ``run_info.resume<step>.json`` of each session resumed at ``step``."""
    return "run_info.json" if step == 0 else f"run_info.resume{step}.json"


# ---------------------------------------------------------------- layer and level names
def level_name(index: int, level: str) -> str:
    """``03_enc1``: a skeleton level numbered by depth, so names sort by depth."""
    return f"{index:02d}_{level}"


def level_label(name: str) -> str:
    """``03_enc1`` -> ``enc1``: the level without its depth number."""
    return name.split("_", 1)[-1]


def conv_name(level: str, k: int, width: int, extra: str | None = None) -> str:
    """``03_enc1/conv2`` (main-path conv ``k`` of a level, zero-padded to ``width`` digits), or a layer
    off the main path named after the conv where it joins, ``03_enc1/conv2.shortcut``."""
    return f"{level}/conv{k:0{width}d}" + (f".{extra}" if extra else "")


def up_conv_name(level: str, width: int) -> str:
    """``05_dec1/conv0_up``: a decoder level's upsampling conv."""
    return f"{conv_name(level, 0, width)}_up"


def is_main_conv(name: str) -> bool:
    """A main-path conv (``03_enc1/conv2``), not a layer off it (``.shortcut``), an up-conv or a linear head."""
    return "." not in name and "/conv" in name and not name.endswith("_up")


def section(name: str) -> str:
    """``03_enc1/conv2`` -> ``enc``; ``02_bottleneck/conv1`` -> ``bottleneck``: the part of the network."""
    return level_label(name.split("/")[0]).rstrip("0123456789")


# ---------------------------------------------------------------- TensorBoard tags
GRAD_NORM = "grad_norm"  # per layer: grad_norm/<layer>; and grad_norm/total
GRAD_LEVEL = "grad_level"  # per level: log10 of the level's gradient norm
WEIGHT_NORM = "weight_norm"
UPDATE_RATIO = "update_ratio"
ACT_MEAN, ACT_STD = "act_mean", "act_std"  # per block, named after its last main-path conv
GRAD_TOTAL = f"{GRAD_NORM}/total"
GRAD_RATIO = "grad_ratio/first_over_last"

_LAYER_TAG = re.compile(r"^([a-z_]+)/(\d+_[^/]+/.+)$")
_LEVEL_TAG = re.compile(r"^([a-z_]+)/(\d+_[^/]+)$")
_LOSS_TAG = re.compile(r"^loss/([^/]+)/(train|val)$")


def layer_tags(names: list[str], kind: str) -> list[str]:
    """``kind/03_enc1/conv2`` for layer names (or ``kind/03_enc1`` for level names)."""
    return [f"{kind}/{name}" for name in names]


def layer_of(tag: str, kind: str) -> str | None:
    """The layer a per-layer tag of ``kind`` names (``grad_norm/03_enc1/conv2`` -> ``03_enc1/conv2``);
    None for any other tag (``grad_norm/total`` included)."""
    m = _LAYER_TAG.match(tag)
    return m.group(2) if m and m.group(1) == kind else None


def level_of(tag: str, kind: str = GRAD_LEVEL) -> str | None:
    """The level a per-level tag names (``grad_level/03_enc1`` -> ``03_enc1``); None for any other tag."""
    m = _LEVEL_TAG.match(tag)
    return m.group(2) if m and m.group(1) == kind else None


def section_pattern(kind: str, sec: str, level: bool = False) -> str:
    """Regex (TensorBoard custom scalars) of every ``kind`` tag in section ``sec`` of any variant:
    its layers (``^grad_norm/\\d+_enc\\d*/``), or with ``level`` its levels (``^grad_level/\\d+_enc\\d*$``)."""
    return rf"^{kind}/\d+_{sec}\d*" + ("$" if level else "/")


def loss_tag(loss: str, split: str) -> str:
    """``loss/mse/train``: the loss is named in the tag."""
    return f"loss/{loss}/{split}"


def parse_loss_tag(tag: str) -> tuple[str, str] | None:
    """``loss/mse/train`` -> ``("mse", "train")``; None for any other tag."""
    m = _LOSS_TAG.match(tag)
    return (m.group(1), m.group(2)) if m else None


def metric_tag(metric: str) -> str:
    """TensorBoard tag of a metric name as in metrics.json (``val_psnr`` -> ``metric/val_psnr``);
    ``val_loss`` / ``train_loss`` -> ``loss/val`` / ``loss/train``, which a reader adds for the run's
    loss whatever its name."""
    if metric == "val_loss":
        return "loss/val"
    if metric == "train_loss":
        return "loss/train"
    return f"metric/{metric}"


# Other scalars the loop writes and readers look up (the report's curves, the benchmark, the claims).
LR = "lr"
STEPS_PER_S, IMAGES_PER_S = "perf/steps_per_s", "perf/images_per_s"
MODEL_PARAMS, MODEL_FLOPS = "model/params", "model/flops_per_sample"
SCORE, BEST_SCORE = "hparams/score", "hparams/best_score"  # the headline metric under one name for HParams
# `skipbench analyze`: scalars by k (step = k blocks deleted), pictures (step 0)
LESION_K = "lesion/metric_vs_k"  # mean headline metric with k random blocks deleted (k = 0: intact)
LESION_K_LOSS = "lesion/loss_vs_k"
LESION_SINGLE = "lesion/single"  # step = the deleted block's index in forward order
LESION_FIGURE = "lesion/curves"
LANDSCAPE_LINE = "landscape/line"  # step = grid index along the 1-d direction
LANDSCAPE_FIGURE = "landscape/contour"
LANDSCAPE_INTERP = "landscape/interpolation"  # step = point index from the initial to the trained weights
LANDSCAPE_MESH = "landscape/surface"


# ---------------------------------------------------------------- the summary (metrics.json)
# Values are named as in TensorBoard without the kind: ``val_psnr``, ``val_loss``, ``train_loss``.
FINAL_PREFIX, BEST_PREFIX = "final_", "best_"
FINAL_TRAIN_LOSS = "final_train_loss"


def final_key(metric: str) -> str:
    """``val_psnr`` -> ``final_val_psnr``: its value at the last eval of the run."""
    return FINAL_PREFIX + metric


def best_key(metric: str) -> str:
    """``val_psnr`` -> ``best_val_psnr``: its best value at any eval (written for the headline metric only)."""
    return BEST_PREFIX + metric


def final_metrics(summary: Mapping[str, Any]) -> list[str]:
    """The metrics with a final value in a summary (``["train_loss", "val_loss", "val_psnr"]``), in its order."""
    return [k[len(FINAL_PREFIX):] for k in summary if str(k).startswith(FINAL_PREFIX)]


def headline_metric(summary: Mapping[str, Any]) -> str | None:
    """The task's headline metric (``val_psnr``): the one metric with a ``best_`` value in the summary."""
    return next((k[len(BEST_PREFIX):] for k in summary if str(k).startswith(BEST_PREFIX + "val_")), None)


def headline_value(summary: Mapping[str, Any]) -> float | None:
    """The headline metric's final value (None if the run has none, or it is not a finite number)."""
    metric = headline_metric(summary)
    value = summary.get(final_key(metric)) if metric else None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


# ---------------------------------------------------------------- checkpoint.pt
# What a checkpoint holds, by key: the loop saves these, resume and the probes read them back.
STEP, MODEL_STATE, OPTIMIZER_STATE, SCHEDULER_STATE, SAVED_CONFIG = "step", "model", "optimizer", "scheduler", "config"
COUNTERS = ("best", "best_step", "train_time", "data_time")  # carried so a resumed run's summary is whole
REQUIRED_STATE = (STEP, MODEL_STATE)  # in any skipbench checkpoint
TRAINING_STATE = (OPTIMIZER_STATE, SCHEDULER_STATE)  # in one that training can resume from
# Checkpoint and config must agree on these (architecture, task, data shape); the rest (length,
# learning rate, logging) may change on resume.
MUST_MATCH = ("model.", "task._target_", "dataset._target_", "dataset.size", "dataset.channels", "dataset.crop",
              "optimizer._target_", "scheduler._target_")


# ---------------------------------------------------------------- the sweep folder
MULTIRUN = "multirun.yaml"  # what Hydra writes into a sweep folder: its config, sweeper params included


def read_multirun(sweep_dir: Path) -> dict[str, Any] | None:
    """A sweep folder's ``multirun.yaml`` as plain YAML (no interpolation is resolved: the folder may come
    from someone else), or None when there is none or it cannot be read."""
    import yaml

    try:
        cfg = yaml.safe_load((Path(sweep_dir) / MULTIRUN).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return cfg if isinstance(cfg, dict) else None


def _hydra_node(cfg: dict[str, Any] | None, *path: str) -> Any:
    for key in ("hydra", *path):
        cfg = cfg.get(key) if isinstance(cfg, dict) else None
    return cfg


def sweep_params(sweep_dir: Path) -> dict[str, str] | None:
    """``{"model": "a,b", "seed": "0,1"}``: the swept keys of a sweep folder's ``multirun.yaml`` as
    written (values unparsed), or None when there is none or it cannot be read."""
    cfg = read_multirun(sweep_dir)
    if _hydra_node(cfg, "sweeper") is None:
        return None
    params = _hydra_node(cfg, "sweeper", "params") or {}
    return {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else None


def sweep_task_overrides(sweep_dir: Path) -> list[str]:
    """The overrides given to every job of the sweep (``hydra.overrides.task`` of ``multirun.yaml``)."""
    task = _hydra_node(read_multirun(sweep_dir), "overrides", "task") or []
    return [str(o) for o in task] if isinstance(task, list) else []


# ---------------------------------------------------------------- config keys
# Keys that never define a group: the training seed, and settings that do not change the result.
EXCLUDED_KEYS = ("seed", "resume", "trainer.progress", "trainer.device", "trainer.num_threads")


def flat_items(cfg: Mapping[str, Any], prefix: str = "", builders: bool = False) -> Iterator[tuple[str, Any]]:
    """Nested config -> ``("model.depth", 3), ...`` in config order; ``_target_``-style keys (how to
    build, not what) are left out unless ``builders``. Leaves are yielded as they are (lists stay lists)."""
    for key, value in cfg.items():
        if str(key).startswith("_") and not builders:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flat_items(value, f"{name}.", builders)
        else:
            yield name, value


# ---------------------------------------------------------------- writing files of a run folder
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


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``: strict JSON readers reject NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(strict_json(data), f, indent=2, allow_nan=False)
            f.write("\n")

    atomic_write(path, write)
