"""Seed bands inside TensorBoard: the ``_report`` run's per-group mean and 95 % confidence interval
(Student t over the seeds, :class:`~skipbench.report.stats.Summary`) of every validation metric and of
every level's log10 gradient norm, by step, shown as custom-scalars margin charts.

Tags: ``band/<quantity>/<group>/{mean,lower,upper}`` (``band/val_psnr/model=unet_concat/mean``,
``band/grad_level/enc1/model=resnet/lower``). A step gets a band only where at least 3 of the group's
completed runs logged a finite value there (a t interval needs n >= 3); the chart titles say n.
"""

from __future__ import annotations

import re
from typing import Sequence

from ..run_folder import GRAD_LEVEL, level_label, level_of, parse_loss_tag
from .aggregate import Group, Report
from .stats import Summary

BAND = "band"
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
    metrics = sorted(t for t in tags if t.startswith("metric/val_"))
    levels = sorted((t for t in tags if level_of(t, GRAD_LEVEL)), key=lambda t: level_of(t, GRAD_LEVEL))
    out = [(t, t.removeprefix("metric/"), "report: validation metrics, mean and 95 % CI over seeds")
           for t in losses + metrics]
    out += [(t, f"{GRAD_LEVEL}/{level_label(level_of(t, GRAD_LEVEL))}",
             "report: log10 gradient norm by level, mean and 95 % CI over seeds") for t in levels]
    return out


def band_scalars(report: Report) -> tuple[dict[str, list[tuple[int, float]]], dict, list[str]]:
    """``({tag: [(step, value)]}, custom-scalars layout, notes)`` of the bands of every group with at
    least :data:`MIN_N` completed runs; the layout has one margin chart per quantity (at most
    :data:`~skipbench.train.tb.MAX_LINES` groups each, split beyond); ``notes`` name the groups left out."""
    from ..train.tb import MAX_LINES, chunked

    groups = [g for g in report.groups if len(g.completed) >= MIN_N]
    notes = [f"{g.label}: n = {len(g.completed)} completed run(s), no 95 % band (needs {MIN_N})"
             for g in report.groups if len(g.completed) < MIN_N]
    scalars: dict[str, list[tuple[int, float]]] = {}
    layout: dict = {}
    for source, name, category in _quantities(groups):
        series = []
        for g in groups:
            rows = band_series([r.curve(source) for r in g.completed])
            if not rows:
                continue
            base = f"{BAND}/{name}/{_safe(g.label)}"
            for i, bound in enumerate(BOUNDS):
                scalars[f"{base}/{bound}"] = [(row[0], row[1 + i]) for row in rows]
            series.append(((f"{base}/mean", f"{base}/lower", f"{base}/upper"), max(row[4] for row in rows)))
        ns = sorted({n for _, n in series})
        n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
        for title, part in chunked(f"{name} ({n_text})", series, MAX_LINES) if series else []:
            layout.setdefault(category, {})[title] = ["Margin", [tags for tags, _ in part]]
    return scalars, layout, notes
