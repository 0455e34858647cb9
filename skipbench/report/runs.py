"""Find run folders below a directory and load what each one holds.

A run folder is any folder with ``.hydra/config.yaml`` (a single run under ``outputs/runs/`` or one
job of a sweep under ``outputs/multirun/<time>/``). Its ``metrics.json`` is written when the run
ends; a folder without one is still running or was killed (*incomplete*). TensorBoard scalars are
read lazily, with TensorBoard's own reader, only when a statistic or a plot needs them.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ReportError  # noqa: F401  (re-exported: skipbench.report.runs.ReportError)
from ..run_folder import (CHECKPOINT, COMPLETED, CONFIG, EVENTS_PREFIX, FAILURES, GRAD_LEVEL, GRAD_NORM, INCOMPLETE,
                          METRICS, OVERRIDES, PROBE, UnreadableFile, file_kind, flat_items, is_regular, layer_of, level_of,
                          parse_loss_tag, read_json, read_yaml, resolve_nodes)

Curve = list[tuple[int, float]]  # (step, value), sorted by step, one value per step


@dataclass
class Run:
    path: Path  # the run folder
    name: str  # its path relative to the report root ("." when the root is the run itself)
    config: dict[str, Any]  # flat: {"model.name": "resnet", "task": "denoise", ...}
    overrides: list[str]
    metrics: dict[str, Any] | None  # metrics.json, None while the run has none
    problem: str | None = None  # why metrics.json could not be read, if it could not
    _scalars: dict[str, Curve] | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        if self.metrics is None:
            return INCOMPLETE
        return str(self.metrics.get("status", COMPLETED))

    @property
    def finished(self) -> bool:
        """Ended for good: completed, diverged or failed (an interrupted run can still be resumed)."""
        return self.status in (COMPLETED, *FAILURES)

    @property
    def failed(self) -> bool:
        return self.status in FAILURES

    def event_files(self) -> tuple[list[Path], list[Path]]:
        """The run's event files: (regular files, entries named like one that are not: a FIFO, a device,
        a folder -- TensorBoard's reader would block on them for ever or fail)."""
        named = [p for p in self.path.iterdir() if p.name.startswith(EVENTS_PREFIX)]
        regular = [p for p in named if is_regular(p)]
        return regular, [p for p in named if p not in regular]

    @property
    def is_probe(self) -> bool:
        """A folder of ``skipbench probe``: it measured models at initialisation and trained nothing."""
        return bool((self.metrics or {}).get("probe")) or (
            (self.path / PROBE).is_file() and not (self.path / CHECKPOINT).exists())

    @property
    def has_events(self) -> bool:
        regular, special = self.event_files()
        return bool(regular) and not special

    def scalars(self) -> dict[str, Curve]:
        """Every scalar tag -> its curve, read once (``{}`` when the run has no event files, or one of
        them is a special file: :func:`load_runs` says so)."""
        if self._scalars is None:
            self._scalars = read_scalars(self.path) if self.has_events else {}
        return self._scalars

    def curve(self, tag: str) -> Curve:
        return self.scalars().get(tag, [])

    def grad_norm_layers(self) -> list[tuple[str, str]]:
        """``(layer name, tag)`` of every per-layer gradient-norm tag, by depth (= by name)."""
        return sorted((name, tag) for tag in self.scalars() if (name := layer_of(tag, GRAD_NORM)))

    def grad_levels(self) -> list[tuple[str, str]]:
        """``(level name, tag)`` of every per-level log10 gradient-norm tag, by depth (= by name)."""
        return sorted((name, tag) for tag in self.scalars() if (name := level_of(tag, GRAD_LEVEL)))

    @property
    def loss_name(self) -> str | None:
        """The loss the run's tags name (``mse``, ``ce``), None for none."""
        return next((parsed[0] for tag in self.scalars() if (parsed := parse_loss_tag(tag))), None)


# ---------------------------------------------------------------- discovery
def _natural_key(path: Path) -> list:
    """Sort ``2_...`` before ``10_...``: numbers in names compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def discover_runs(root: Path) -> list[Path]:
    """Every folder at or below ``root`` holding ``.hydra/config.yaml``, in natural order."""
    root = Path(root)
    found = []
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if (here / CONFIG).is_file():
            found.append(here)
        # Never descend into Hydra's own folder or hidden ones; runs do not nest inside them.
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    return sorted(found, key=_natural_key)


# ---------------------------------------------------------------- loading
def _target_name(node: Mapping[str, Any]) -> str | None:
    target = node.get("_target_")
    return str(target).rsplit(".", 1)[-1].lower() if target else None


def hashable(value: Any) -> Any:
    """Lists as tuples, at any depth (``[[1, 2], {"a": 3}]`` -> ``((1, 2), (("a", 3),))``), so a
    list-valued key can define a group."""
    if isinstance(value, (list, tuple)):
        return tuple(hashable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple((str(k), hashable(v)) for k, v in value.items())
    return value


def flat_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The flat config plus one key per built component naming what was built.

    ``task: denoise``, ``optimizer: adamw``, ``scheduler: warmup_cosine``, ``dataset: shapes``
    (the last part of each ``_target_``), so runs on different tasks or optimizers group apart even
    when those have no other differing key. ``model`` is left out: ``model.name`` says it.
    """
    # lists become tuples: hashable, so a list-valued key can define a group
    flat = {key: hashable(v) for key, v in flat_items(cfg)}
    for group, node in cfg.items():
        if group != "model" and isinstance(node, Mapping):
            name = _target_name(node)
            if name:
                flat[str(group)] = name
    return flat


def _label_custom_model(cfg: Mapping) -> None:
    """model=custom saves ``name: ${model_label:${.target}}``; resolvers are never run on a run folder's
    files, so apply the same pure string function (:func:`skipbench.models.custom.label`) to its target."""
    from ..models.custom import label

    model = cfg.get("model")
    if isinstance(model, dict) and str(model.get("name", "")).startswith("${model_label:") and model.get("target"):
        model["name"] = label(str(model["target"]))


def load_run(path: Path, root: Path) -> Run:
    """One run folder, read as data (:func:`skipbench.run_folder.read_yaml`): a config that cannot be read
    raises :class:`ReportError`; an unreadable ``metrics.json`` leaves the run without one, saying why."""
    path, root = Path(path), Path(root)
    try:
        cfg = resolve_nodes(read_yaml(path / CONFIG))
    except UnreadableFile as ex:
        raise ReportError(str(ex)) from None
    if not isinstance(cfg, Mapping):
        raise ReportError(f"{path / CONFIG}: not a mapping")
    _label_custom_model(cfg)
    overrides: list[str] = []
    if (path / OVERRIDES).exists():
        try:
            saved = read_yaml(path / OVERRIDES)
            overrides = [str(o) for o in saved] if isinstance(saved, list) else []
        except UnreadableFile:
            pass
    metrics, problem = None, None
    if (path / METRICS).exists():
        try:
            metrics = read_json(path / METRICS)
            if not isinstance(metrics, dict):
                metrics, problem = None, "metrics.json is not an object"
        except UnreadableFile as ex:
            problem = f"metrics.json unreadable ({str(ex).removeprefix(f'{path / METRICS}: ')})"
    rel = os.path.relpath(path, root)
    return Run(path=path, name=rel, config=flat_config(cfg), overrides=overrides, metrics=metrics, problem=problem)


def load_runs(root: Path, on_skip: Callable[[str], None] | None = None, probes_only: bool = False) -> list[Run]:
    """All runs below ``root``; raises :class:`ReportError` when the folder is missing or holds none.

    A folder whose config cannot be read is skipped; ``on_skip`` gets one line saying why. Probe folders
    (``skipbench probe``) are left out of a training comparison; ``probes_only``: only they are returned
    (a claim measured at initialisation reads them).
    """
    root = Path(root)
    if not root.exists():
        raise ReportError(f"{root}: no such directory")
    if not root.is_dir():
        raise ReportError(f"{root}: not a directory")
    paths = discover_runs(root)
    if not paths:
        raise ReportError(f"{root}: no runs found (a run folder holds .hydra/config.yaml)")
    if probes_only:
        found = []
        for p in paths:
            try:
                run = load_run(p, root)
            except ReportError as ex:
                (on_skip or (lambda line: None))(f"skipped: {ex}")
                continue
            if run.is_probe:
                found.append(run)
        if not found:
            raise ReportError(f"{root}: no probe folders (skipbench probe writes {PROBE})")
        return found
    runs, probes = [], []
    note = on_skip or (lambda line: None)
    for p in paths:
        try:
            run = load_run(p, root)
        except ReportError as ex:
            note(f"skipped: {ex}")
            continue
        if run.is_probe:
            probes.append(run)
            continue
        runs.append(run)
        if run.problem:
            note(f"{run.name}: {run.problem}; counted as incomplete")
        for special in run.event_files()[1]:
            note(f"curves of {run.name} left out: {special} is not a regular file "
                 f"({file_kind(special.lstat().st_mode)})")
    if probes:  # they trained nothing: no row of a training comparison
        note(f"left out {len(probes)} probe folder{'s' if len(probes) != 1 else ''} (skipbench probe: measured at "
             f"initialisation, see their {PROBE}): {', '.join(r.name for r in probes[:3])}"
             f"{' ...' if len(probes) > 3 else ''}")
    if not runs:
        what = "only probe folders" if probes else "no readable runs (every .hydra/config.yaml below it failed to load)"
        raise ReportError(f"{root}: {what}; a report compares training runs")
    return runs


# ---------------------------------------------------------------- TensorBoard scalars
def _finite_or_nan(v: float) -> float:
    return float(v) if v is not None else math.nan


def read_scalars(run_dir: Path) -> dict[str, Curve]:
    """All scalar curves of a run folder, read with TensorBoard's ``EventAccumulator``.

    A run resumed in place has several event files; the accumulator reads them in order and drops
    what the resumed writer purged. Should a step still appear twice, the value written last wins.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 1, "tensors": 1, "histograms": 1})
    ea.Reload()
    curves: dict[str, Curve] = {}
    for tag in ea.Tags().get("scalars", []):
        events = list(ea.Scalars(tag))
        # Stable sort by wall time: events of a later session come later even if files interleave.
        events.sort(key=lambda e: e.wall_time)
        by_step: dict[int, float] = {}
        for e in events:
            by_step[int(e.step)] = _finite_or_nan(e.value)
        curves[tag] = sorted(by_step.items())
    # "loss/train" / "loss/val" stand for the run's loss whatever its name (loss/mse/train ...).
    for tag in list(curves):
        if parsed := parse_loss_tag(tag):
            curves.setdefault(f"loss/{parsed[1]}", curves[tag])
    return curves
