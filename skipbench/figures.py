"""Every matplotlib figure skipbench draws for a run, and the one gradient colour scale.

Drawn headless with matplotlib's object API -- a ``Figure`` on the Agg canvas, no pyplot -- so nothing
global is touched (no backend switch, no open-figure registry that grows with every eval), and this
works without a display and inside other programs. The training loop's figures (the gradient-flow heat
map and the gradient norm by depth), the classify task's confusion matrix and the report's plots
(:mod:`skipbench.report.plots`) are all drawn with the helpers here.

Import this module only to draw: it imports matplotlib (a run that draws nothing never loads it).

The gradient colour scale: log10 of a gradient L2 norm on a range fixed per task (:func:`grad_range`), so
one colour means one value in every variant's picture of that task and in the report's; values beyond it
are clipped *visibly* (their own colours, arrows on the colour bar).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

GRAD_LOG10_RANGE = (-6.0, 1.0)  # 1e-6 (vanished) .. 10 (exploding): a task without its own range (a custom one)
# Per task, from what its runs span: per-layer log10 gradient norms of the task's default model over 60
# steps (2026-12-03) spanned reconstruct -3.40 .. -0.31, denoise -3.28 .. -0.44, segment -2.81 .. -0.12,
# classify -0.99 .. 0.19; the ranges leave about a decade below (vanishing variants: deeper, plain) and
# half a decade above. Every run of a task draws on its range, so a colour means one value across its
# variants and in the report, and the data are not squeezed into a few shades of one range for all tasks.
GRAD_LOG10_RANGES = {"reconstruct": (-4.5, 0.5), "denoise": (-4.5, 0.5), "segment": (-4.0, 1.0),
                     "classify": (-3.0, 1.5)}
GRAD_FLOOR_LOG10 = -20.0  # an exactly zero gradient: below every range (the under colour), not "not logged"
UNDER, OVER, MISSING = "#ff00ff", "#ff2020", "#d9d9d9"  # not logged: a light grey that does not outshine data
RUN_DPI = 90  # the figures of one run, as TensorBoard images


def grad_range(task: str | None) -> tuple[float, float]:
    """The fixed log10 gradient-norm range of ``task``'s figures (:data:`GRAD_LOG10_RANGES`)."""
    return GRAD_LOG10_RANGES.get(str(task), GRAD_LOG10_RANGE)


# ---------------------------------------------------------------- canvas
def new_figure(width: float, height: float, dpi: float, layout: str | None = None) -> Figure:
    """A figure of ``width`` x ``height`` inches on its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_rgb(fig: Figure) -> np.ndarray:
    """The figure drawn to an ``[H, W, 3]`` uint8 array (what TensorBoard's image summary takes)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


# ---------------------------------------------------------------- the gradient colour scale
def grad_cmap():
    """viridis, with values below / above the fixed range in magenta / red, NaN (not logged) in light grey."""
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(under=UNDER, over=OVER, bad=MISSING)


def grad_colorbar(fig: Figure, image, ax, task: str | None = None) -> None:
    """The colour bar of a gradient-flow heat map: the task's fixed range, and how clipped values show."""
    lo, hi = grad_range(task)
    bar = fig.colorbar(image, ax=ax, extend="both")
    who = f"every {task} run" if task in GRAD_LOG10_RANGES else "every run"
    bar.set_label(f"log10 ||grad||, fixed range [{lo:g}, {hi:g}] for {who}\n"
                  f"magenta: below {lo:g} (or exactly 0), red: above {hi:g}, grey: not logged", fontsize=8)


def grad_image(ax, table: Any, task: str | None = None, **kwargs: Any):
    """A heat map of log10 gradient norms ``[layers, steps]`` on the task's fixed scale (layers top to bottom)."""
    lo, hi = grad_range(task)
    return ax.imshow(table, aspect="auto", interpolation="nearest", cmap=grad_cmap(), vmin=lo, vmax=hi, **kwargs)


# ---------------------------------------------------------------- one run's figures
def _log10(values: list[float]) -> list[float]:
    """log10 of gradient norms: an exact 0 at :data:`GRAD_FLOOR_LOG10` (a vanished gradient, drawn in the
    under colour), NaN only for what is no number."""
    return [math.log10(v) if v > 0 else GRAD_FLOOR_LOG10 if v == 0 else float("nan") for v in values]


def grad_flow_heatmap(names: list[str], steps: list[int], norms: list[list[float]], task: str | None = None) -> Figure:
    """Rows = layers by depth (input at top), columns = logged steps, colour = log10 grad norm on the
    task's fixed range (:func:`grad_range`: the same colours mean the same values in every run of it)."""
    grid = [[_log10(col)[i] for col in norms] for i in range(len(names))]
    fig = new_figure(8, max(3.0, 0.16 * len(names) + 1.2), RUN_DPI)
    ax = fig.subplots()
    im = grad_image(ax, grid, task, extent=(steps[0], steps[-1], len(names) - 0.5, -0.5) if len(steps) > 1 else None)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    ax.set_xlabel("step")
    ax.set_ylabel("layer (input side at top)")
    ax.set_title("gradient flow: log10 ||grad|| per layer")
    grad_colorbar(fig, im, ax, task)
    fig.tight_layout()
    return fig


def depth_positions(names: list[str]) -> tuple[list[float], list[tuple[float, str]]]:
    """x of each layer (``03_enc1/conv2``) on a by-depth axis that every variant shares: level ``i`` of
    the skeleton spans [i, i + 1), its layers spread evenly inside it, so a variant with more layers
    (shortcuts, gates) lines up level by level with one with fewer. Returns the x's and the level ticks."""
    levels = list(dict.fromkeys(n.split("/")[0] for n in names))
    count = {lv: sum(n.split("/")[0] == lv for n in names) for lv in levels}
    seen: dict[str, int] = {}
    xs = []
    for n in names:
        lv = n.split("/")[0]
        xs.append(levels.index(lv) + seen.get(lv, 0) / count[lv])
        seen[lv] = seen.get(lv, 0) + 1
    return xs, [(float(i), lv.split("_", 1)[-1]) for i, lv in enumerate(levels)]


def grad_norm_by_depth(names: list[str], step: int, norms: list[float], task: str | None = None) -> Figure:
    """Gradient norm vs layer depth at one step (log scale): vanishing shows as a slope. Both axes are
    fixed -- x by level (:func:`depth_positions`), y the task's range (:func:`grad_range`) -- so the
    pictures of every run of a sweep compare at a glance; values outside sit on the edge, marked."""
    lo, hi = grad_range(task)
    xs, ticks = depth_positions(names)
    fig = new_figure(8, 3.2, RUN_DPI)
    ax = fig.subplots()
    ax.semilogy(xs, norms, marker="o", markersize=3)
    clipped = [(x, 10.0 ** lo if v < 10.0 ** lo else 10.0 ** hi) for x, v in zip(xs, norms)
               if not 10.0 ** lo <= v <= 10.0 ** hi]
    if clipped:
        ax.plot(*zip(*clipped), ls="none", marker="x", color=OVER, ms=6, label="outside the fixed range")
        ax.legend(fontsize=7, loc="upper right")
    ax.set_ylim(10.0 ** lo, 10.0 ** hi)
    ax.set_xlim(-0.25, len(ticks))
    ax.set_xticks([x for x, _ in ticks], [label for _, label in ticks], fontsize=7)
    ax.set_xlabel("level, input side first (its layers spread inside it)")
    ax.set_ylabel("||grad||")
    ax.set_title(f"gradient norm by depth at step {step}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix(counts: list[list[int]], classes: Sequence[str]) -> Figure:
    """Row-normalised confusion matrix (rows = true class), counts written in the cells."""
    n = len(classes)
    totals = [max(1, sum(row)) for row in counts]
    rates = [[c / totals[i] for c in row] for i, row in enumerate(counts)]
    size = min(12.0, 2.0 + 0.45 * n)
    fig = new_figure(size, size * 0.85, RUN_DPI)
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n))
    ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(counts[i][j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i][j] > 0.5 else "black")
    ax.set_title("validation confusion matrix")
    fig.colorbar(im, ax=ax, label="fraction of true class")
    fig.tight_layout()
    return fig
