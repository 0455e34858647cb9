"""``skipbench analyze lesion|landscape`` on one run folder: its knobs, the JSON, TensorBoard and pictures.

The knobs are :class:`AnalyzeConfig` (override as ``lesion.draws=3 landscape.grid=11``); the model is
the run's checkpoint rebuilt from its saved config (:func:`skipbench.claims.probes.trained_and_initial`),
scored on the run's validation split in eval mode with the validation noise every eval uses. The
checkpoint is only read; results go to ``lesion.json`` / ``landscape.json`` (atomically) and the event
files of ``<run>/analysis/<kind>/`` (replaced on a re-run; the training's own events are never touched).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional

import torch

from .. import seeds
from ..errors import ConfigError
from ..run_folder import (COMPLETED, EVENTS_PREFIX, LANDSCAPE, LANDSCAPE_FIGURE, LANDSCAPE_INTERP, LANDSCAPE_LINE,
                          LANDSCAPE_MESH, LESION, LESION_FIGURE, LESION_K, LESION_K_LOSS, LESION_SINGLE,
                          analysis_tb_dir, write_json)

# The contour plots' colour scale, log10 of the task's loss, FIXED PER TASK (not per run), so two runs' or two
# variants' pictures of one task compare by colour; points outside it show in the end colours (extend="both").
# MSE on [0, 1] images: 1e-3 (~30 dB) to 100 (far off the basin; a tiny denoiser's slice reaches 1e6-1e10 at
# its corners, shown in the top colour); cross-entropy: 0.01 to 100 nats.
LOG10_LOSS_RANGE: dict[str, tuple[float, float]] = {
    "reconstruct": (-3.0, 2.0), "denoise": (-3.0, 2.0), "segment": (-2.0, 2.0), "classify": (-2.0, 2.0)}


@dataclass
class LesionConfig:
    k_max: int = 8  # delete k = 1 .. k_max random blocks together (capped at the deletable ones)
    draws: int = 5  # seeded draws of k blocks per k
    long_skips: bool = True  # also drop each long-skip level alone (encoder-decoders)
    reorder: bool = False  # also swap each pair of adjacent same-shape blocks
    val_size: Optional[int] = None  # score on the first val_size validation images (null: all)
    batch_size: int = 128  # images per forward while scoring
    blocks: Optional[List[str]] = None  # delete just these units together (lesion.blocks=[enc1.0,dec1.merge]); null: the full study


@dataclass
class LandscapeConfig:
    grid: int = 21  # points per axis of the 2-d slice (and of the 1-d line)
    span: float = 1.0  # the slice covers [-span, span]^2 in units of the filter-normalised directions
    batch: int = 32  # images of the fixed evaluation batch (the first of the val split)
    chunk: int = 21  # grid points per vmapped forward (memory grows with it; 1 = a plain loop)
    interpolate: bool = True  # 1-d interpolation from the initial weights (regenerated from the seed)
    interp_points: int = 21  # points on [-0.25, 1.25] (0 = initial weights, 1 = trained)
    hessian_iters: int = 10  # power-iteration steps per extreme eigenvalue (0: skip the Hessian)
    hessian_batch: int = 16  # images the Hessian is taken on (the first of the fixed batch)


@dataclass
class AnalyzeConfig:
    lesion: LesionConfig = field(default_factory=LesionConfig)
    landscape: LandscapeConfig = field(default_factory=LandscapeConfig)
    seed: Optional[int] = None  # seed of the lesion draws and landscape directions (null: the run's seed)
    progress: bool = True  # tqdm bars
    num_threads: Optional[int] = None  # torch CPU threads (null: torch's default)


def check(cfg) -> None:
    """One-line errors for knobs out of range (before anything is loaded)."""
    rules = [("lesion.k_max", cfg.lesion.k_max >= 1, "must be >= 1"), ("lesion.draws", cfg.lesion.draws >= 1, "must be >= 1"),
             ("lesion.val_size", cfg.lesion.val_size is None or cfg.lesion.val_size >= 1, "must be >= 1 or null"),
             ("lesion.batch_size", cfg.lesion.batch_size >= 1, "must be >= 1"),
             ("landscape.grid", cfg.landscape.grid >= 3, "must be >= 3 points per axis (a grid of fewer has no interior)"),
             ("landscape.span", cfg.landscape.span > 0, "must be > 0"),
             ("landscape.batch", cfg.landscape.batch >= 1, "must be >= 1"),
             ("landscape.chunk", cfg.landscape.chunk >= 1, "must be >= 1"),
             ("landscape.interp_points", cfg.landscape.interp_points >= 2, "must be >= 2"),
             ("landscape.hessian_iters", cfg.landscape.hessian_iters >= 0, "must be >= 0"),
             ("landscape.hessian_batch", cfg.landscape.hessian_batch >= 1, "must be >= 1"),
             ("num_threads", cfg.num_threads is None or cfg.num_threads >= 1, "must be >= 1 or null")]
    for key, ok, rule in rules:
        if not ok:
            raise ConfigError(f"{key}={_value(cfg, key)}: {rule}")


def _value(cfg, key: str) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key)


def _bar(enabled: bool, desc: str) -> Callable:
    from tqdm.auto import tqdm

    return lambda it: tqdm(it, desc=desc, disable=not enabled, leave=False)


def _seed(cfg, run) -> int:
    return int(run.cfg.seed if cfg.seed is None else cfg.seed)


def scorer(run, val_size: int | None, batch_size: int) -> Callable[[torch.nn.Module], dict[str, float]]:
    """``score(model) -> {"loss", <metrics>}`` over the run's val split (or its first ``val_size`` images)."""
    from contextlib import nullcontext

    from ..train.loop import evaluate

    val = run.data.val if val_size is None else run.data.val.take(slice(0, val_size))

    def score(model: torch.nn.Module) -> dict[str, float]:
        values, _ = evaluate(model, run.task, val, batch_size, nullcontext)
        model.eval()  # evaluate() leaves the model in train mode
        return {k: float(v) for k, v in values.items()}
    return score


def _header(run, run_dir: Path, kind: str) -> dict[str, Any]:
    return {"status": COMPLETED, "analysis": kind, "run": str(run_dir), "model": str(run.cfg.model.name),
            "block": str(run.cfg.model.block), "long_skip": str(run.cfg.model.long_skip),
            "blocks_per_level": int(run.cfg.model.blocks_per_level), "seed": int(run.cfg.seed),
            "task": run.task.name, "metric": run.task.metric}


# ---------------------------------------------------------------- lesion
def lesion_study(run, cfg) -> dict[str, Any]:
    """Every lesion of :mod:`.lesion` on a loaded run; the dict ``lesion.json`` holds (no files written)."""
    from . import lesion as L

    c = cfg.lesion
    metric = run.task.metric
    score = scorer(run, c.val_size, c.batch_size)
    chosen = L.select_units(run.model, list(c.blocks)) if c.blocks else None  # unknown or undeletable: one line
    start = time.perf_counter()
    base = score(run.model)
    if chosen is not None:
        with L.lesioned(chosen):
            picked = score(run.model)
        return {"baseline": base, "chosen": {"blocks": list(c.blocks), **picked}, "single": [], "not_deletable": [],
                "k": [], "single_mean": None, "single_drop": None, "smoothness": None, "draws": 0, "long_skips": [],
                "reorder": [], "seconds": time.perf_counter() - start}
    single, refused = L.single_lesions(run.model, score, _bar(cfg.progress, "single lesions"))
    curve = L.k_lesions(run.model, score, metric, c.k_max, c.draws, _seed(cfg, run), _bar(cfg.progress, "k lesions"))
    out = {"baseline": base, "single": single, "not_deletable": refused, "k": curve,
           "single_mean": (sum(s[metric] for s in single) / len(single)) if single else None,
           "single_drop": (base[metric] - sum(s[metric] for s in single) / len(single)) if single else None,
           "smoothness": L.smoothness(base[metric], curve), "draws": c.draws,
           "long_skips": L.long_skip_lesions(run.model, score) if c.long_skips else [],
           "reorder": L.reorder_lesions(run.model, score) if c.reorder else []}
    out["seconds"] = time.perf_counter() - start
    return out


def lesion_figure(results: dict[str, dict], metric: str):
    """``metric`` vs k blocks deleted (mean over draws, min-max band), one line per entry of ``results``
    (a label -> the ``lesion.json`` of a run)."""
    from ..figures import new_figure

    fig = new_figure(5.5, 3.6, 110, layout="constrained")
    ax = fig.add_subplot()
    for label, r in results.items():
        ks = [0] + [c["k"] for c in r["k"]]
        mean = [r["baseline"][metric]] + [c["mean"] for c in r["k"]]
        lo = [r["baseline"][metric]] + [min(c[metric]) for c in r["k"]]
        hi = [r["baseline"][metric]] + [max(c[metric]) for c in r["k"]]
        (ln,) = ax.plot(ks, mean, marker="o", label=label)
        ax.fill_between(ks, lo, hi, color=ln.get_color(), alpha=0.2)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # k counts blocks
    ax.set_xlabel("blocks deleted (k)")
    ax.set_ylabel(f"val {metric}")
    ax.set_title("lesions (Veit et al. 2016)")
    ax.legend(fontsize=7)
    return fig


def analysis_logger(run_dir: Path, kind: str):
    """A :class:`TBLogger` on ``<run>/analysis/<kind>`` with that folder's earlier event files removed, so
    re-running an analysis replaces its curves instead of doubling them (the training's events stay)."""
    from ..train.tb import TBLogger

    folder = analysis_tb_dir(run_dir, kind)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{EVENTS_PREFIX}.*"):
        old.unlink()
    return TBLogger(folder)


def write_lesion_tb(run_dir: Path, result: dict[str, Any]) -> None:
    """``lesion/metric_vs_k`` and ``lesion/loss_vs_k`` by k (step k, k = 0 the intact model), each single
    lesion (step = block index) and the curves' picture, into ``<run>/analysis/lesion``."""
    metric = result["metric"]
    tb = analysis_logger(run_dir, "lesion")
    try:
        tb.scalars({LESION_K: result["baseline"][metric], LESION_K_LOSS: result["baseline"]["loss"]}, 0)
        for c in result["k"]:
            tb.scalars({LESION_K: c["mean"], LESION_K_LOSS: c["loss_mean"]}, c["k"])
        for i, s in enumerate(result["single"]):
            tb.scalars({LESION_SINGLE: s[metric]}, i)
        tb.figures({LESION_FIGURE: lesion_figure({result["model"]: result}, metric)}, 0)
    finally:
        tb.close(finished=False)


def lesion_run(run_dir: Path, cfg) -> dict[str, Any]:
    """Load the run in ``run_dir``, run every lesion, write ``lesion.json`` and TensorBoard; the result."""
    from ..claims.probes import trained_and_initial

    run, _ = trained_and_initial(run_dir)
    result = {**_header(run, run_dir, "lesion"), **lesion_study(run, cfg)}
    write_json(Path(run_dir) / LESION, result)
    write_lesion_tb(Path(run_dir), result)
    return result


# ---------------------------------------------------------------- landscape
def fixed_batch(run, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``size`` validation images with the validation noise: the batch every point is scored on."""
    val = run.data.val.take(slice(0, size))
    return run.task.make_batch(val, seeds.generator(seeds.VAL_NOISE_SEED, "val_noise"))


def landscape_study(run, cfg, initial: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """The 1-d line, the 2-d slice, the interpolation from ``initial`` and the Hessian extremes of a run."""
    from . import landscape as L

    c = cfg.landscape
    model, seed = run.model, _seed(cfg, run)
    inputs, target = fixed_batch(run, c.batch)
    loss_fn = run.task.loss
    start = time.perf_counter()
    d1 = L.filter_normalized_direction(model, seeds.generator(seed, "landscape", 0))
    d2 = L.filter_normalized_direction(model, seeds.generator(seed, "landscape", 1))
    axis = torch.linspace(-c.span, c.span, c.grid)
    kw = {"chunk": c.chunk}
    with torch.no_grad():
        centre = float(loss_fn(model(inputs), target))
    line = L.line(model, d1, axis, inputs, target, loss_fn, progress=_bar(cfg.progress, "landscape line"), **kw)
    grid = L.plane(model, d1, d2, axis, axis, inputs, target, loss_fn, progress=_bar(cfg.progress, "landscape 2-d"), **kw)
    grid_s = time.perf_counter() - start
    out: dict[str, Any] = {
        "loss_name": run.task.loss_name, "batch": int(inputs.shape[0]), "span": c.span, "axis": axis.tolist(),
        "centre_loss": centre, "line": line.tolist(), "grid": grid.tolist(),
        "nonconvex_fraction": L.nonconvex_fraction(grid), "line_nonconvex_fraction": L.nonconvex_fraction(line),
        "grid_seconds": grid_s, "seconds_per_point": grid_s / (c.grid + c.grid**2)}
    if c.interpolate and initial is not None:
        alphas = torch.linspace(-0.25, 1.25, c.interp_points)
        out["interpolation"] = {"alpha": alphas.tolist(), "loss": L.interpolation(
            model, L.to_params(initial, L.weights(model)), alphas, inputs, target, loss_fn, **kw).tolist()}
    if c.hessian_iters:
        h = min(c.hessian_batch, inputs.shape[0])
        out["hessian"] = L.hessian_extremes(model, inputs[:h], target[:h], loss_fn, c.hessian_iters,
                                            seeds.generator(seed, "landscape", 2))
    out["seconds"] = time.perf_counter() - start
    return out


def colour_range(task: str) -> tuple[float, float]:
    """The fixed log10-loss colour range of ``task``'s contour plots (:data:`LOG10_LOSS_RANGE`)."""
    if task not in LOG10_LOSS_RANGE:
        raise ConfigError(f"task '{task}': no landscape colour scale; known: {', '.join(LOG10_LOSS_RANGE)}")
    return LOG10_LOSS_RANGE[task]


def contour(ax, result: dict[str, Any], vmin: float, vmax: float):
    """A filled contour of log10 loss of one ``landscape.json`` on a fixed colour scale; the mappable."""
    import numpy as np

    axis = np.asarray(result["axis"])
    z = np.log10(np.clip(np.asarray(result["grid"]), 1e-12, None))
    levels = np.linspace(vmin, vmax, 21)
    cs = ax.contourf(axis, axis, z.T, levels=levels, cmap="viridis", extend="both")  # x = d1 (rows of grid)
    ax.contour(axis, axis, z.T, levels=levels, colors="k", linewidths=0.3)
    ax.set_aspect("equal")
    ax.set_xlabel("d1")
    ax.set_ylabel("d2")
    return cs


def landscape_figure(results: dict[str, dict]):
    """Every entry's 2-d slice side by side on its task's FIXED colour scale (log10 loss,
    :data:`LOG10_LOSS_RANGE`, stated on the colour bar): the same colours mean the same loss in any run."""
    from ..figures import new_figure

    tasks = sorted({str(r["task"]) for r in results.values()})
    if len(tasks) != 1:
        raise ConfigError(f"landscape figure: one task at a time, got {', '.join(tasks)}")
    vmin, vmax = colour_range(tasks[0])
    loss = next(iter(results.values())).get("loss_name", "loss")
    n = len(results)
    fig = new_figure(3.2 * n + 1.2, 3.4, 110, layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    cs = None
    for ax, (label, r) in zip(axes, results.items()):
        cs = contour(ax, r, vmin, vmax)
        ax.set_title(f"{label}\nnonconvex {r['nonconvex_fraction']:.2f}", fontsize=8)
    fig.colorbar(cs, ax=list(axes), label=f"log10 {loss} loss\n(fixed for {tasks[0]}: {vmin:g} to {vmax:g})")
    return fig


def write_landscape_tb(run_dir: Path, result: dict[str, Any]) -> None:
    """The 1-d line and the interpolation as scalars (step = point index), the contour (fixed colour
    scale per task) and the surface as a mesh, into ``<run>/analysis/landscape``."""
    tb = analysis_logger(run_dir, "landscape")
    try:
        for i, v in enumerate(result["line"]):
            tb.scalars({LANDSCAPE_LINE: v}, i)
        for i, v in enumerate(result.get("interpolation", {}).get("loss", [])):
            tb.scalars({LANDSCAPE_INTERP: v}, i)
        tb.figures({LANDSCAPE_FIGURE: landscape_figure({result["model"]: result})}, 0)
        write_mesh(tb, result)
    finally:
        tb.close(finished=False)


def write_mesh(tb, result: dict[str, Any]) -> None:
    """The 2-d slice as a TensorBoard mesh (x, y = the grid, z = log10 loss), two triangles per cell,
    coloured on the task's fixed scale (dark: low loss, bright: high)."""
    import numpy as np

    axis = np.asarray(result["axis"], dtype=np.float32)
    z = np.log10(np.clip(np.asarray(result["grid"], dtype=np.float32), 1e-12, None))
    n = len(axis)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    verts = np.stack([xx, yy, z], -1).reshape(1, -1, 3)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[:-1, 1:], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)])[None]
    lo, hi = colour_range(str(result["task"]))
    share = ((z.reshape(1, -1, 1) - lo) / (hi - lo)).clip(0, 1)
    colors = (255 * share * np.array([1, 0.3, 0.0]) + 30).clip(0, 255)
    tb.writer.add_mesh(LANDSCAPE_MESH, vertices=torch.from_numpy(verts), faces=torch.from_numpy(faces.astype(np.int32)),
                       colors=torch.from_numpy(colors.astype(np.uint8)), global_step=0)


def landscape_run(run_dir: Path, cfg) -> dict[str, Any]:
    """Load the run in ``run_dir``, measure its landscape, write ``landscape.json`` and TensorBoard; the result."""
    from ..claims.probes import trained_and_initial

    run, initial = trained_and_initial(run_dir)
    result = {**_header(run, run_dir, "landscape"), **landscape_study(run, cfg, initial)}
    write_json(Path(run_dir) / LANDSCAPE, result)
    write_landscape_tb(Path(run_dir), result)
    return result


ANALYSES: dict[str, Callable[[Path, Any], dict[str, Any]]] = {"lesion": lesion_run, "landscape": landscape_run}
