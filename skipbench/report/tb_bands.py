"""Seed bands inside TensorBoard: each group's mean and 95 % confidence interval over its seeds
(Student t, :class:`~skipbench.report.stats.Summary`) of every validation metric, the validation loss and
every level's log10 gradient norm, by step, shown as custom-scalars margin charts.

TensorBoard colours a chart's lines by run, not by series, so each group is a run of its own,
``_report/bands/<group>`` (``_report/bands/model=unet_concat``), with the same tags in every group:
``report_band/<quantity>/{mean,lower,upper}`` (``report_band/val_psnr/mean``,
``report_band/grad_level/enc1/lower``); one margin chart per quantity then draws every group in its own
colour. (The ``report_band`` group sorts after the runs' own loss and metrics in Time Series.) A step
gets a band only where at least 3 of the group's completed runs logged a finite value there (a t
interval needs n >= 3); the chart titles say n. The inputs' own metrics (``val_input_psnr``: the noisy
input against the target) are the same for every model and get no band.
"""

from __future__ import annotations

import re
from typing import Sequence

from ..run_folder import GRAD_LEVEL, level_label, level_of, parse_loss_tag
from .aggregate import Group, Report
from .stats import Summary

BAND = "report_band"
BANDS_DIR = "bands"  # inside the _report run: one run per group
MIN_N = 3  # Summary.ci95 needs 3 values
BOUNDS = ("mean", "lower", "upper")


def _safe(text: str) -> str:
    """A group label as one tag component: no ``/`` (TensorBoard would nest it), no blanks."""
    return re.sub(r"[/\s]+", "_", text)


def band_series(curves: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float, float, float, int]]:
    """Curves of one group's seeds -> ``(step, mean, lower, upper, n)`` at every step where at least
    :data:`MIN_N` of them have a finite value; lower/upper = mean -/+ the Student-t 95 % half-width."""
    by_step: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in curve:
            by_step.setdefault(int(step), []).append(value)
    out = []
    for step in sorted(by_step):
        s = Summary.of(by_step[step])
        if s.n >= MIN_N and s.ci95 is not None:
            out.append((step, s.mean, s.mean - s.ci95, s.mean + s.ci95, s.n))
    return out


def _quantities(groups: Sequence[Group]) -> list[tuple[str, str, str]]:
    """``(source tag, band name, category)`` of every validation metric and per-level gradient norm
    some completed run logged; metrics first, levels by depth (labels, so depths line up by name)."""
    tags = {t for g in groups for r in g.completed for t in r.scalars()}
    losses = sorted(t for t in tags if (parsed := parse_loss_tag(t)) and parsed[1] == "val")
    metrics = sorted(t for t in tags if t.startswith("metric/val_") and not t.startswith("metric/val_input_"))
    levels = sorted((t for t in tags if level_of(t, GRAD_LEVEL)), key=lambda t: level_of(t, GRAD_LEVEL))
    out = [(t, t.removeprefix("metric/"), "report: validation metrics, mean and 95 % CI over seeds")
           for t in losses + metrics]
    out += [(t, f"{GRAD_LEVEL}/{level_label(level_of(t, GRAD_LEVEL))}",
             "report: log10 gradient norm by level, mean and 95 % CI over seeds") for t in levels]
    return out


def band_scalars(report: Report) -> tuple[dict[str, dict[str, list[tuple[int, float]]]], dict, list[str]]:
    """``({group run name: {tag: [(step, value)]}}, custom-scalars layout, notes)`` for every group with
    at least :data:`MIN_N` completed runs; the layout has one margin chart per quantity; ``notes`` name
    the groups left out."""
    groups = [g for g in report.groups if len(g.completed) >= MIN_N]
    notes = [f"{g.label}: n = {len(g.completed)} completed run(s), no 95 % band (needs {MIN_N})"
             for g in report.groups if len(g.completed) < MIN_N]
    runs: dict[str, dict[str, list[tuple[int, float]]]] = {}
    layout: dict = {}
    for source, name, category in _quantities(groups):
        ns = []
        for g in groups:
            rows = band_series([r.curve(source) for r in g.completed])
            if not rows:
                continue
            scalars = runs.setdefault(_safe(g.label), {})
            for i, bound in enumerate(BOUNDS):
                scalars[f"{BAND}/{name}/{bound}"] = [(row[0], row[1 + i]) for row in rows]
            ns.append(max(row[4] for row in rows))
        if ns:
            n_text = f"n = {min(ns)}" if min(ns) == max(ns) else f"n = {min(ns)}–{max(ns)}"
            layout.setdefault(category, {})[f"{name} ({n_text})"] = [
                "Margin", [tuple(f"{BAND}/{name}/{bound}" for bound in BOUNDS)]]
    return runs, layout, notes
