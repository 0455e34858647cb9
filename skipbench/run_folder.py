"""The run-folder contract: what ``skipbench train`` writes into a run folder and what reads it back.

One place for the names both sides must agree on -- the training loop, the CLI, the launchers and the
sweep summary write them; ``skipbench report`` and the claims read them:

* the statuses a run's ``metrics.json`` can hold;
* the files of a run folder (``metrics.json``, ``checkpoint.pt``, ``.hydra/...``, event files, ...);
* the TensorBoard tag format of the per-layer diagnostics, each formatter next to its parser::

      z_layer/grad_norm/03_enc1/conv2  detail / kind / level / layer: level 3 of the skeleton, main-path conv 2
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
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import RunFolderError

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
CROP_PSNR = "crop_psnr.json"  # `skipbench reproduce crop`: val PSNR on the central area, with the checkpoint it read
RESPONSE_STD = "response_std.json"  # `skipbench reproduce branch_response`: the trained 3x3 responses' mean std
# `skipbench analyze KIND` writes its TensorBoard events into <run>/analysis/KIND/ (a run of its own next to the
# training's, "<run>/analysis/lesion" in the dashboard), replacing that folder's event files on a re-run: the
# training's events are never touched and a re-run never doubles a curve.
ANALYSIS_TB = "analysis"
HYDRA_DIR = ".hydra"
CONFIG = Path(HYDRA_DIR) / "config.yaml"
HYDRA_CONFIG = Path(HYDRA_DIR) / "hydra.yaml"
OVERRIDES = Path(HYDRA_DIR) / "overrides.yaml"
LAYERS_MD, LAYERS_JSON = "layers.md", "layers.json"  # the per-layer cost table (skipbench/train/layer_table.py)
LAYERS_TEXT = "model/layers"  # its TensorBoard Text tag
PROFILE_DIR = "profile"  # trainer.profile_steps: Chrome traces (*.pt.trace.json) and ops.txt
PROFILE_OPS = "ops.txt"
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


# ---------------------------------------------------------------- TensorBoard tags
GRAD_NORM = "grad_norm"  # per layer: z_layer/grad_norm/<layer>; and grad_norm/total
GRAD_LEVEL = "grad_level"  # per level: log10 of the level's gradient norm
WEIGHT_NORM = "weight_norm"
UPDATE_RATIO = "update_ratio"
ACT_MEAN, ACT_STD = "act_mean", "act_std"  # per block, named after its last main-path conv
GRAD_MAX = "grad_max"  # per layer: max |gradient| of its weight (gradflow-check's figure)
DEAD_LAYERS = "health/dead_layers"  # how many layers have had exactly zero gradient for diagnostics.dead_after log steps
HIST_WEIGHT, HIST_GRAD = "hist_weight", "hist_grad"  # diagnostics.histograms: per layer, at figures_every
GRAD_TOTAL = f"{GRAD_NORM}/total"
GRAD_RATIO = "grad_ratio/first_over_last"

# Per-layer (and per-block) tags live under one prefix that sorts after every other group: TensorBoard's
# Time Series orders tag groups by name, so a run opens on grad_level, hparams (the headline score), loss
# and metric, and the ~30 per-layer cards of each kind wait at the end (issue 26).
LAYER_DETAIL = "z_layer"
_LAYER_TAG = re.compile(rf"^(?:{LAYER_DETAIL}/)?([a-z_]+)/(\d+_[^/]+/.+)$")  # also the unprefixed tags of older runs
_LEVEL_TAG = re.compile(r"^([a-z_]+)/(\d+_[^/]+)$")
_LOSS_TAG = re.compile(r"^loss/([^/]+)/(train|val)$")


def layer_tag(name: str, kind: str) -> str:
    """``z_layer/kind/03_enc1/conv2`` for a layer (or block) name, ``kind/03_enc1`` for a level name."""
    return f"{LAYER_DETAIL}/{kind}/{name}" if "/" in name else f"{kind}/{name}"


def layer_tags(names: list[str], kind: str) -> list[str]:
    """:func:`layer_tag` of each name."""
    return [layer_tag(name, kind) for name in names]


def layer_of(tag: str, kind: str) -> str | None:
    """The layer a per-layer tag of ``kind`` names (``z_layer/grad_norm/03_enc1/conv2``, or an older run's
    ``grad_norm/03_enc1/conv2`` -> ``03_enc1/conv2``); None for any other tag (``grad_norm/total`` included)."""
    m = _LAYER_TAG.match(tag)
    return m.group(2) if m and m.group(1) == kind else None


def level_of(tag: str, kind: str = GRAD_LEVEL) -> str | None:
    """The level a per-level tag names (``grad_level/03_enc1`` -> ``03_enc1``); None for any other tag."""
    m = _LEVEL_TAG.match(tag)
    return m.group(2) if m and m.group(1) == kind else None


def level_pattern(kind: str, level: str, layers: list[str] | None = None) -> str:
    """Regex (TensorBoard custom scalars) of the ``kind`` tag of one level of any variant, by the level's
    label, not its depth number (``bottleneck`` is ``03_`` at depth 3, ``04_`` at depth 4):
    ``^grad_level/\\d+_enc1$``; for per-layer kinds (``layers`` given) the level's layers,
    ``^z_layer/grad_norm/\\d+_enc1/`` -- or only the named ones (``conv1``, ``conv1.shortcut``) when a level is split."""
    label = re.escape(level_label(level))
    if layers is None:
        return rf"^{kind}/\d+_{label}$"
    if not layers:
        return rf"^{LAYER_DETAIL}/{kind}/\d+_{label}/"
    return rf"^{LAYER_DETAIL}/{kind}/\d+_{label}/({'|'.join(re.escape(x) for x in layers)})$"


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


# The gradient-flow pictures (per layer: detail, after the story in Time Series)
GRAD_FLOW_HEATMAP, GRAD_FLOW_BY_DEPTH = f"{LAYER_DETAIL}/grad_flow/heatmap", f"{LAYER_DETAIL}/grad_flow/by_depth"

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
# `skipbench report`: <report>/_report/lesion/<group label>/ holds one variant's mean LESION_K curve (a TensorBoard
# run per variant, so one card overlays every variant's curve)
REPORT_LESION_RUNS = "lesion"


def analysis_tb_dir(run_dir: Path, kind: str) -> Path:
    """``<run>/analysis/<kind>``: where ``skipbench analyze <kind>`` writes its TensorBoard events."""
    return Path(run_dir) / ANALYSIS_TB / kind


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
COUNTERS = ("best", "best_step", "train_time", "data_time", "wall_time")  # carried so a resumed run's summary is whole
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
    try:
        cfg = read_yaml(Path(sweep_dir) / MULTIRUN)
    except UnreadableFile:
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
# Keys that never define a group: the training seed (and model.seed, its copy for drop_path), settings that do not change the result, and labels.
EXCLUDED_KEYS = ("seed", "model.seed", "resume", "trainer.progress", "trainer.device", "trainer.num_threads", "tags")


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


# ---------------------------------------------------------------- reading files of a run folder (as data)
# A run folder may come from someone else: its files are read as data only -- no interpolation resolver
# (``${oc.env:VAR}`` stays as written), no custom YAML tag, no special file (a FIFO blocks a reader for ever,
# a device never ends), and bounded in size: a summary or a config is a few KB.
MAX_FILE_BYTES = 4 << 20  # per file read from a run folder
MAX_NODES = 200_000  # values in one file once YAML aliases are expanded (a 1.4 KB alias bomb holds 10^9)


class UnreadableFile(RunFolderError):
    """A run-folder file that is not read: missing, special, too large, malformed or too deep."""


def read_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, at most ``limit`` of them; anything else raises :class:`UnreadableFile`.

    Opened non-blocking and checked with ``fstat`` on the open descriptor, so a FIFO never blocks and a
    file swapped for one between a check and the read is still refused."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as ex:
        raise UnreadableFile(f"{path}: cannot open it ({ex.strerror or ex})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"{path}: not a regular file ({file_kind(st.st_mode)}); not read")
        if st.st_size > limit:
            raise UnreadableFile(f"{path}: {st.st_size} bytes, over the {limit} a run folder's file may hold")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as ex:
        raise UnreadableFile(f"{path}: cannot read it ({ex.strerror or ex})") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # grew since fstat
        raise UnreadableFile(f"{path}: over the {limit} bytes a run folder's file may hold")
    return data


def file_kind(mode: int | Path) -> str:
    """``a FIFO``, ``a directory``, ``a character device``...: what a non-regular file (or its mode) is."""
    if isinstance(mode, Path):
        try:
            mode = os.stat(mode).st_mode
        except OSError as ex:
            return f"unreadable: {ex.strerror or ex}"
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def is_regular(path: Path) -> bool:
    """A regular file (after symlinks); never opens it, so a FIFO answers False without blocking."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    try:
        return read_bytes(path, limit).decode("utf-8")
    except UnicodeDecodeError as ex:
        raise UnreadableFile(f"{path}: not UTF-8 text (byte {ex.start})") from None


def _count_nodes(value: Any, budget: int) -> int:
    """``budget`` minus the values in ``value`` with shared references expanded; stops below zero."""
    stack = [value]
    while stack and budget >= 0:
        v = stack.pop()
        budget -= 1
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return budget


def _check_size(path: Path, value: Any) -> Any:
    if _count_nodes(value, MAX_NODES) < 0:
        raise UnreadableFile(f"{path}: over {MAX_NODES} values once YAML aliases are expanded (an alias bomb?)")
    return value


_LOADER: list[Any] = []


def _yaml_loader() -> Any:
    """YAML as OmegaConf reads it (1e-3 a float, no dates, a duplicate key refused), parsed by libyaml when
    PyYAML has it: a report or ``reproduce`` over a few hundred runs reads ~700 of these files, and the pure
    Python parser spent ~10 s on them. OmegaConf's loader with libyaml's parser first in line. Built once."""
    if not _LOADER:
        import yaml
        from omegaconf._utils import get_yaml_loader

        loader = get_yaml_loader()
        try:
            from yaml.cyaml import CParser
        except ImportError:  # PyYAML built without libyaml
            CParser = None
        if CParser is not None:
            class RunFolderLoader(CParser, loader):  # type: ignore[misc, valid-type]
                def __init__(self, stream: str) -> None:
                    CParser.__init__(self, stream)
                    yaml.constructor.SafeConstructor.__init__(self)
                    yaml.resolver.Resolver.__init__(self)

            loader = RunFolderLoader
        _LOADER.append(loader)
    return _LOADER[0]


def read_yaml(path: Path, limit: int = MAX_FILE_BYTES) -> Any:
    """A YAML file of a run folder as plain Python (dicts, lists, scalars): interpolations kept as written,
    custom tags refused, size and alias expansion bounded. Raises :class:`UnreadableFile` in one line."""
    import yaml

    text = read_text(path, limit)
    loader = _yaml_loader()(text)
    try:
        value = loader.get_single_data()
    except yaml.YAMLError as ex:
        raise UnreadableFile(f"{path}: not valid YAML ({' '.join(str(ex).split())[:150]})") from None
    except RecursionError:
        raise UnreadableFile(f"{path}: nested too deeply") from None
    finally:
        loader.dispose()
    return _check_size(path, value)


def read_json(path: Path, limit: int = MAX_FILE_BYTES) -> Any:
    """A JSON file of a run folder (``metrics.json``, ``probe.json``), bounded; :class:`UnreadableFile`
    in one line when it is not (too large, too deep, not JSON, a number of over 4300 digits)."""
    text = read_text(path, limit)
    try:
        return _check_size(path, json.loads(text))
    except RecursionError:
        raise UnreadableFile(f"{path}: nested too deeply") from None
    except ValueError as ex:
        raise UnreadableFile(f"{path}: not valid JSON ({' '.join(str(ex).split())[:150]})") from None


_NODE_INTERPOLATION = re.compile(r"\$\{([A-Za-z0-9_\-.]+)\}")  # ${model.name}: a key path, no resolver


def resolve_nodes(cfg: Any, budget: int = MAX_NODES) -> Any:
    """``cfg`` with node interpolations (``${model.name}``, ``${tuned_lr.${model.name}}``) replaced by the
    values they point to in ``cfg`` itself; any resolver call (``${oc.env:HOME}``, ``${now:...}``), relative
    or missing key is kept as written -- a run folder is data, nothing outside it is ever read. Bounded:
    expansion beyond ``budget`` values keeps the rest as written."""
    left = [budget]

    def lookup(path: str, depth: int) -> Any:
        node: Any = cfg
        for part in path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise KeyError(path)
        return walk(node, depth + 1)

    def interpolate(text: str, depth: int) -> Any:
        if depth > 16 or left[0] < 0 or "${" not in text:
            return text
        whole = _NODE_INTERPOLATION.fullmatch(text)
        try:
            if whole:
                return lookup(whole[1], depth)
            inner = _NODE_INTERPOLATION.sub(lambda m: _scalar(lookup(m[1], depth)), text)
        except (KeyError, TypeError):
            return text
        if inner == text or len(inner) > 10_000:
            return text
        return interpolate(inner, depth + 1)

    def walk(node: Any, depth: int) -> Any:
        left[0] -= 1
        if isinstance(node, dict):
            return {k: walk(v, depth) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, depth) for v in node]
        return interpolate(node, depth) if isinstance(node, str) else node

    return walk(cfg, 0)


def _scalar(value: Any) -> str:
    if isinstance(value, (dict, list)) or (isinstance(value, str) and "${" in value):
        raise TypeError("not a resolved scalar")
    return str(value)


def literal(cfg: Any) -> Any:
    """``cfg`` with every ``${`` escaped (``\\${``), so OmegaConf keeps what :func:`resolve_nodes` left
    unresolved as text instead of calling a resolver on it."""
    if isinstance(cfg, dict):
        return {k: literal(v) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [literal(v) for v in cfg]
    return cfg.replace("${", "\\${") if isinstance(cfg, str) else cfg
