"""Every matplotlib figure skipbench draws for a run, and the one gradient colour scale.

Drawn headless with matplotlib's object API -- a ``Figure`` on the Agg canvas, no pyplot -- so nothing
global is touched (no backend switch, no open-figure registry that grows with every eval), and this
works without a display and inside other programs. The training loop's figures (the gradient-flow heat
map and the gradient norm by depth), the classify task's confusion matrix and the report's plots
(:mod:`skipbench.report.plots`) are all drawn with the helpers here.

Import this module only to draw: it imports matplotlib (a run that draws nothing never loads it).

The gradient colour scale: log10 of a gradient L2 norm on a fixed range, so one colour means one value
in every variant's picture and in the report's; values beyond it are clipped *visibly* (their own
colours, arrows on the colour bar).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

GRAD_LOG10_RANGE = (-6.0, 1.0)  # 1e-6 (vanished) .. 10 (exploding)
UNDER, OVER, MISSING = "#ff00ff", "#ff2020", "white"
RUN_DPI = 90  # the figures of one run, as TensorBoard images


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
    """viridis, with values below / above :data:`GRAD_LOG10_RANGE` in magenta / red, NaN in white."""
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(under=UNDER, over=OVER, bad=MISSING)


def grad_colorbar(fig: Figure, image, ax) -> None:
    """The colour bar of a gradient-flow heat map: the fixed range, and how clipped values show."""
    lo, hi = GRAD_LOG10_RANGE
    bar = fig.colorbar(image, ax=ax, extend="both")
    bar.set_label(f"log10 ||grad||, fixed range [{lo:g}, {hi:g}] for every run\n"
                  f"magenta: below {lo:g}, red: above {hi:g}, white: not logged", fontsize=8)


def grad_image(ax, table: Any, **kwargs: Any):
    """A heat map of log10 gradient norms ``[layers, steps]`` on the fixed scale (layers top to bottom)."""
    return ax.imshow(table, aspect="auto", interpolation="nearest", cmap=grad_cmap(), vmin=GRAD_LOG10_RANGE[0],
                     vmax=GRAD_LOG10_RANGE[1], **kwargs)


# ---------------------------------------------------------------- one run's figures
def _log10(values: list[float]) -> list[float]:
    return [math.log10(v) if v > 0 else float("nan") for v in values]


def grad_flow_heatmap(names: list[str], steps: list[int], norms: list[list[float]]) -> Figure:
    """Rows = layers by depth (input at top), columns = logged steps, colour = log10 grad norm on the
    fixed range :data:`GRAD_LOG10_RANGE` (the same colours mean the same values in every run)."""
    grid = [[_log10(col)[i] for col in norms] for i in range(len(names))]
    fig = new_figure(8, max(3.0, 0.16 * len(names) + 1.2), RUN_DPI)
    ax = fig.subplots()
    im = grad_image(ax, grid, extent=(steps[0], steps[-1], len(names) - 0.5, -0.5) if len(steps) > 1 else None)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    ax.set_xlabel("step")
    ax.set_ylabel("layer (input side at top)")
    ax.set_title("gradient flow: log10 ||grad|| per layer")
    grad_colorbar(fig, im, ax)
    fig.tight_layout()
    return fig


def grad_norm_by_depth(names: list[str], step: int, norms: list[float]) -> Figure:
    """Gradient norm vs layer depth at one step (log scale): vanishing shows as a slope."""
    fig = new_figure(8, 3.2, RUN_DPI)
    ax = fig.subplots()
    ax.semilogy(range(len(norms)), norms, marker="o", markersize=3)
    ax.set_xlabel("layer depth index (0 = input side)")
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
