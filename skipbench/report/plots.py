"""The report's figures, drawn headless: matplotlib ``Figure`` objects on the Agg canvas.

No pyplot: nothing global is touched (no backend switch, no open-figure registry), so this works
without a display and inside other programs.

* ``curves.png``: validation metric and training loss against step, one line per group (mean over
  its seeds) with a min-max band;
* ``grad_norm_depth.png``: per group, gradient norm against layer depth at an early, a middle and a
  late logged step (log scale);
* ``grad_flow.png``: per group, a heat map of log10 gradient norm, layers (by depth) x logged steps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .aggregate import Group, Report, grad_norm_table, mean_curve, metric_tag

DPI = 110


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _legend_label(g: Group) -> str:
    return f"{g.label} (n={len(g.completed)})"


def _title(text: str, width: int = 48) -> str:
    """Wrap a long group label over lines at its commas."""
    lines, line = [], ""
    for part in text.split(", "):
        candidate = f"{line}, {part}" if line else part
        if line and len(candidate) > width:
            lines.append(line + ",")
            line = part
        else:
            line = candidate
    return "\n".join([*lines, line])


# ---------------------------------------------------------------- curves
def plot_curves(report: Report, path: Path) -> Path | None:
    panels = [
        (metric_tag(report.metric), f"{report.metric} (validation)", report.metric, False),
        ("loss/train", "training loss", "train loss (log scale)", True),
    ]
    data = []
    for tag, *_ in panels:
        data.append([mean_curve([r.curve(tag) for r in g.completed]) for g in report.groups])
    if not any(len(steps) for panel in data for steps, *_ in panel):
        return None
    colors = _colors(len(report.groups))
    fig = _figure(12, 4.6 + 0.25 * math.ceil(len(report.groups) / 2))
    axes = fig.subplots(1, 2)
    handles = []
    for ax, (tag, title, ylabel, logy), panel in zip(axes, panels, data):
        for g, color, (steps, mean, lo, hi) in zip(report.groups, colors, panel):
            if not len(steps):
                continue
            (line,) = ax.plot(steps, mean, color=color, lw=1.8, marker="o" if len(steps) <= 12 else None, ms=3,
                              label=_legend_label(g))
            if len(g.completed) > 1:
                ax.fill_between(steps, lo, hi, color=color, alpha=0.18, lw=0)
            if ax is axes[0]:
                handles.append(line)
        if ax is axes[0] and report.target is not None:
            ax.axhline(report.target, color="0.3", ls="--", lw=1)
            ax.annotate(f"target {report.target:.4g}", xy=(0.01, report.target), xycoords=("axes fraction", "data"),
                        xytext=(0, 3), textcoords="offset points", fontsize=8, color="0.3")
        if logy and all(np.nanmin(lo) > 0 for steps, _, lo, _ in panel if len(steps)):
            ax.set_yscale("log")
        ax.set_title(f"{title} (mean over seeds, band = min–max)", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 2), fontsize=8, frameon=False)
    fig.suptitle(f"Training curves: {report.root}", fontsize=11)
    return _save(fig, path)


# ---------------------------------------------------------------- gradient norm vs depth
def _phase_steps(steps: np.ndarray) -> list[tuple[str, int]]:
    """Early (first), middle and late (last) logged step; fewer when fewer were logged."""
    picks = [("early", 0), ("middle", (len(steps) - 1) // 2), ("late", len(steps) - 1)]
    seen, out = set(), []
    for name, i in picks:
        if i not in seen:
            seen.add(i)
            out.append((name, int(steps[i])))
    return out


def _group_tables(report: Report) -> list[tuple[Group, list[str], np.ndarray, np.ndarray]]:
    out = []
    for g in report.groups:
        names, steps, table = grad_norm_table(g.completed)
        if names:
            out.append((g, names, steps, table))
    return out


def plot_grad_norm_depth(report: Report, path: Path) -> Path | None:
    tables = _group_tables(report)
    if not tables:
        return None
    rows, cols = _grid(len(tables), 3)
    fig = _figure(4.6 * cols, 3.9 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    styles = {"early": ("#1f77b4", "o"), "middle": ("#ff7f0e", "s"), "late": ("#2ca02c", "^")}
    for ax, (g, names, steps, table) in zip(axes, tables):
        depth = np.arange(len(names))
        col = {int(s): i for i, s in enumerate(steps)}
        for phase, step in _phase_steps(steps):
            color, marker = styles[phase]
            ax.plot(depth, 10.0 ** table[:, col[step]], color=color, marker=marker, ms=3.5, lw=1.4,
                    label=f"{phase}: step {step}")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(_title(_legend_label(g)), fontsize=9)
        ax.set_xlabel("layer depth index (input → output)")
        ax.set_ylabel("gradient L2 norm (log scale)")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7, loc="best")
        ax.yaxis.set_tick_params(labelleft=True)
    for ax in axes[len(tables):]:
        ax.set_visible(False)
    fig.suptitle("Gradient norm by layer depth (geometric mean over seeds)", fontsize=11)
    return _save(fig, path)


# ---------------------------------------------------------------- gradient flow heat maps
def _tick_positions(n: int, max_ticks: int) -> list[int]:
    """At most about ``max_ticks`` evenly spaced indices, always with the first and the last."""
    if n <= max_ticks:
        return list(range(n))
    stride = math.ceil((n - 1) / (max_ticks - 1))
    ticks = list(range(0, n - 1, stride))
    if len(ticks) > 1 and n - 1 - ticks[-1] <= stride / 2:
        ticks.pop()
    return [*ticks, n - 1]


def plot_grad_flow(report: Report, path: Path) -> Path | None:
    tables = _group_tables(report)
    if not tables:
        return None
    finite = np.concatenate([t[np.isfinite(t)] for *_, t in tables]) if tables else np.zeros(0)
    if not finite.size:
        return None
    vmin, vmax = float(np.min(finite)), float(np.max(finite))
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    max_layers = max(len(names) for _, names, _, _ in tables)
    rows, cols = _grid(len(tables), 4)
    fig = _figure(4.4 * cols + 1.2, max(3.6, 0.16 * max_layers + 1.6) * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    image = None
    for ax, (g, names, steps, table) in zip(axes, tables):
        image = ax.imshow(table, aspect="auto", interpolation="nearest", cmap="viridis", vmin=vmin, vmax=vmax,
                          origin="upper")
        xt = _tick_positions(len(steps), 6)
        ax.set_xticks(xt, [str(int(steps[i])) for i in xt], fontsize=7)
        yt = _tick_positions(len(names), 40)
        ax.set_yticks(yt, [f"{i:02d} {names[i]}" for i in yt], fontsize=6)
        ax.set_xlabel("step")
        ax.set_ylabel("layer (input at top)")
        ax.set_title(_title(_legend_label(g), 40), fontsize=9)
    for ax in axes[len(tables):]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=list(axes[: len(tables)]), label="log10 gradient L2 norm", shrink=0.9)
    fig.suptitle("Gradient flow: per-layer gradient norm over training (mean log10 over seeds)", fontsize=11)
    return _save(fig, path)


PLOTS: dict[str, Callable[[Report, Path], Path | None]] = {
    "curves.png": plot_curves,
    "grad_norm_depth.png": plot_grad_norm_depth,
    "grad_flow.png": plot_grad_flow,
}


def write_plots(report: Report, out_dir: Path, names: Sequence[str] | None = None) -> tuple[list[Path], list[str]]:
    """Draw every plot into ``out_dir``; returns the files written and the names skipped (no data)."""
    written, skipped = [], []
    for name, draw in PLOTS.items():
        if names is not None and name not in names:
            continue
        result = draw(report, Path(out_dir) / name)
        (written.append(result) if result is not None else skipped.append(name))
    return written, skipped
