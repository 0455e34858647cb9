"""Matplotlib figures for TensorBoard (headless Agg backend)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .scales import GRAD_LOG10_RANGE, grad_cmap, grad_colorbar  # noqa: E402


def _log10(values: list[float]) -> list[float]:
    return [math.log10(v) if v > 0 else float("nan") for v in values]


def grad_flow_heatmap(names: list[str], steps: list[int], norms: list[list[float]]):
    """Rows = layers by depth (input at top), columns = logged steps, colour = log10 grad norm on the
    fixed range :data:`GRAD_LOG10_RANGE` (the same colours mean the same values in every run)."""
    grid = [[_log10(col)[i] for col in norms] for i in range(len(names))]
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.16 * len(names) + 1.2)), dpi=90)
    im = ax.imshow(grid, aspect="auto", interpolation="nearest", cmap=grad_cmap(), vmin=GRAD_LOG10_RANGE[0],
                   vmax=GRAD_LOG10_RANGE[1],
                   extent=(steps[0], steps[-1], len(names) - 0.5, -0.5) if len(steps) > 1 else None)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    ax.set_xlabel("step")
    ax.set_ylabel("layer (input side at top)")
    ax.set_title("gradient flow: log10 ||grad|| per layer")
    grad_colorbar(fig, im, ax)
    fig.tight_layout()
    return fig


def grad_norm_by_depth(names: list[str], step: int, norms: list[float]):
    """Gradient norm vs layer depth at one step (log scale): vanishing shows as a slope."""
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=90)
    ax.semilogy(range(len(norms)), norms, marker="o", markersize=3)
    ax.set_xlabel("layer depth index (0 = input side)")
    ax.set_ylabel("||grad||")
    ax.set_title(f"gradient norm by depth at step {step}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix(counts: list[list[int]], classes: list[str]):
    """Row-normalised confusion matrix (rows = true class), counts written in the cells."""
    n = len(classes)
    totals = [max(1, sum(row)) for row in counts]
    rates = [[c / totals[i] for c in row] for i, row in enumerate(counts)]
    size = min(12.0, 2.0 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=90)
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
