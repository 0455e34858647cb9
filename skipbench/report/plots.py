"""The report's figures, drawn with :mod:`skipbench.figures` (matplotlib's object API, no pyplot):

* ``curves.png``: validation metric and training loss against step, one line per group (mean over
  its seeds) with a min-max band;
* ``grad_norm_depth.png``: log10 gradient norm of each level (enc0 .. bottleneck .. dec0, head) at an
  early, a middle and a late logged step, every group overlaid (mean over seeds, min-max band);
* ``grad_flow.png``: per group, a heat map of log10 gradient norm, layers (by depth) x logged steps,
  side by side on the one fixed colour range every run's own heat map uses.

:func:`write_tensorboard` also writes them (and the summary table) as a TensorBoard run, ``_report``,
inside the report folder, so ``tensorboard --logdir outputs/`` shows the comparison.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..figures import grad_colorbar, grad_image, new_figure
from ..run_folder import EVENTS_PREFIX, level_label, metric_tag
from .aggregate import Group, Report
from .curves import grad_norm_table, mean_curve

DPI = 110


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _figure(width: float, height: float) -> Figure:
    return new_figure(width, height, DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _legend_label(g: Group) -> str:
    return f"{g.label} (n={len(g.completed)})"


def _band_text(report: Report) -> str:
    """What the shaded band is, for the number of seeds the groups have (no band for one run)."""
    ns = sorted({len(g.completed) for g in report.groups if g.completed})
    if not ns or ns[-1] <= 1:
        return "one run per group: no band"
    n = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
    return f"mean over seeds, band = min–max of {n} runs" + ("; n = 1 groups: no band" if ns[0] == 1 else "")


def _task(report: Report) -> str | None:
    """The one task of the report's runs (the report never pools tasks), for its fixed gradient range."""
    tasks = {str(r.config.get("task")) for g in report.groups for r in g.completed if r.config.get("task")}
    return tasks.pop() if len(tasks) == 1 else None


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
    # One loss per axis: groups whose runs name another loss (CE next to MSE) are left out of it.
    losses = [next((r.loss_name for r in g.completed if r.loss_name), None) for g in report.groups]
    loss = next((x for x in losses if x), None)
    panels = [
        (metric_tag(report.metric), f"{report.metric} (validation)", report.metric, False),
        ("loss/train", f"training loss ({loss or 'loss'})", "train loss (log scale)", True),
    ]
    data = [[mean_curve([r.curve(panels[0][0]) for r in g.completed]) for g in report.groups],
            [mean_curve([r.curve("loss/train") for r in g.completed] if x in (loss, None) else [])
             for g, x in zip(report.groups, losses)]]
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
        ax.set_title(f"{title} ({_band_text(report)})", fontsize=10)
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


def _union(report: Report, levels: bool) -> list[str]:
    """Layer (or level) names of every group's runs, by depth: rows that line up across variants."""
    names = {n for g in report.groups for r in g.completed for n, _ in (r.grad_levels() if levels else r.grad_norm_layers())}
    return sorted(names)


def plot_grad_norm_depth(report: Report, path: Path) -> Path | None:
    """log10 gradient norm of each skeleton level (enc0 .. bottleneck .. dec0, head) at an early, a
    middle and a late logged step: every group overlaid on one axis per phase, seed band min-max."""
    levels = _union(report, levels=True)
    per_group = []
    for g in report.groups:
        tables = [grad_norm_table([r], levels, levels=True) for r in g.completed]
        tables = [t for t in tables if t[0]]
        if tables:
            per_group.append((g, tables))
    if not per_group:
        return None
    all_steps = np.asarray(sorted({int(s) for _, ts in per_group for _, steps, _ in ts for s in steps}))
    phases = _phase_steps(all_steps)
    fig = _figure(4.4 * len(phases) + 0.4, 4.4 + 0.25 * math.ceil(len(per_group) / 2))
    axes = np.atleast_1d(fig.subplots(1, len(phases), sharey=True, squeeze=False)).ravel()
    colors = _colors(len(report.groups))
    color_of = {id(g): c for g, c in zip(report.groups, colors)}
    x = np.arange(len(levels))
    handles = []
    for ax, (phase, step) in zip(axes, phases):
        for g, tables in per_group:
            rows = []
            for _, steps, table in tables:  # each run at its logged step nearest to the phase's step
                rows.append(table[:, int(np.argmin(np.abs(steps - step)))])
            rows = np.vstack(rows)
            with np.errstate(all="ignore"):
                mean, lo, hi = np.nanmean(rows, 0), np.nanmin(rows, 0), np.nanmax(rows, 0)
            (line,) = ax.plot(x, mean, color=color_of[id(g)], marker="o", ms=3.5, lw=1.6, label=_legend_label(g))
            if len(rows) > 1:
                ax.fill_between(x, lo, hi, color=color_of[id(g)], alpha=0.18, lw=0)
            if ax is axes[0]:
                handles.append(line)
        ax.set_xticks(x, [level_label(n) for n in levels], rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{phase}: step {step}", fontsize=10)
        ax.set_xlabel("level (input → output)")
        ax.grid(True, alpha=0.3)
        ax.yaxis.set_tick_params(labelleft=True)
    axes[0].set_ylabel("log10 ||grad|| of the level")
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=8, frameon=False)
    fig.suptitle(f"Gradient norm by depth, every variant overlaid ({_band_text(report)})", fontsize=11)
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
    """Heat maps of log10 per-layer gradient norm (layers x logged steps), one per group, side by
    side on the fixed colour range every run uses; rows are the union of the groups' layers, so a
    layer only some variants have (a shortcut, a gate) is a white row in the others."""
    names = _union(report, levels=False)
    tables = [(g, *grad_norm_table(g.completed, names)[1:]) for g in report.groups]
    tables = [t for t in tables if t[1].size]
    if not tables:
        return None
    rows, cols = _grid(len(tables), 4)
    fig = _figure(4.4 * cols + 1.6, max(3.6, 0.16 * len(names) + 1.6) * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False, sharey=True)).ravel()
    image = None
    for ax, (g, steps, table) in zip(axes, tables):
        image = grad_image(ax, table, _task(report), origin="upper")
        xt = _tick_positions(len(steps), 6)
        ax.set_xticks(xt, [str(int(steps[i])) for i in xt], fontsize=7)
        yt = _tick_positions(len(names), 60)
        ax.set_yticks(yt, [names[i] for i in yt], fontsize=6)
        ax.yaxis.set_tick_params(labelleft=ax is axes[0] or cols == 1)
        ax.set_xlabel("step")
        ax.set_title(_title(_legend_label(g), 40), fontsize=9)
    axes[0].set_ylabel("layer (input at top)")
    for ax in axes[len(tables):]:
        ax.set_visible(False)
    grad_colorbar(fig, image, list(axes[: len(tables)]), _task(report))
    fig.suptitle("Gradient flow per layer over training (mean log10 over seeds), one colour scale for all", fontsize=11)
    return _save(fig, path)


PLOTS: dict[str, Callable[[Report, Path], Path | None]] = {
    "curves.png": plot_curves,
    "grad_norm_depth.png": plot_grad_norm_depth,
    "grad_flow.png": plot_grad_flow,
}


def write_tensorboard(out_dir: Path, images: Sequence[Path], summary: str, report: Report | None = None) -> Path:
    """The report's figures and summary table as one TensorBoard run, ``<out_dir>/_report``, so that
    ``tensorboard --logdir outputs/`` shows the cross-variant comparison (Images and Text tabs); with
    ``report``, also each group's seed bands (:mod:`.tb_bands`): a run per group in ``_report/bands/``,
    drawn by the custom-scalars margin charts of ``_report``'s layout."""
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    from ..train.tb import custom_scalars
    from .tb_bands import BANDS_DIR, band_scalars

    run = Path(out_dir) / "_report"
    run.mkdir(parents=True, exist_ok=True)
    for old in run.glob(f"{EVENTS_PREFIX}.*"):  # a report run again replaces its pictures
        old.unlink()
    if (run / BANDS_DIR).is_dir():  # and its bands (a group may be gone)
        shutil.rmtree(run / BANDS_DIR)
    writer = SummaryWriter(log_dir=str(run))
    try:
        for path in images:
            with Image.open(path) as im:
                writer.add_image(f"report/{Path(path).stem}", np.asarray(im.convert("RGB")), 0, dataformats="HWC")
        writer.add_text("report/summary", summary, 0)
        if report is not None:
            groups, layout, notes = band_scalars(report)
            for name, scalars in groups.items():  # one run per group: TensorBoard colours lines by run
                _write_scalars(run / BANDS_DIR / name, scalars)
            if layout:
                writer.file_writer.add_summary(custom_scalars(layout))
            if notes:
                writer.add_text("report/bands", "\n".join(f"- {line}" for line in notes), 0)
    finally:
        writer.close()
    return run


def _write_scalars(folder: Path, scalars: dict[str, list[tuple[int, float]]]) -> None:
    """``{tag: [(step, value)]}`` as one event per step into a new run ``folder``."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import SummaryWriter

    by_step: dict[int, list] = {}
    for tag, points in scalars.items():
        for step, value in points:
            by_step.setdefault(step, []).append(Summary.Value(tag=tag, simple_value=float(value)))
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for step in sorted(by_step):
            writer.file_writer.add_summary(Summary(value=by_step[step]), step)
    finally:
        writer.close()


def write_plots(report: Report, out_dir: Path, names: Sequence[str] | None = None) -> tuple[list[Path], list[str]]:
    """Draw every plot into ``out_dir``; returns the files written and the names skipped (no data)."""
    written, skipped = [], []
    for name, draw in PLOTS.items():
        if names is not None and name not in names:
            continue
        result = draw(report, Path(out_dir) / name)
        (written.append(result) if result is not None else skipped.append(name))
    return written, skipped
