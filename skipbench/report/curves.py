"""Curves of several runs made into one: the mean over seeds, the gradient-norm table of a group.

What the plots draw (:mod:`.plots`); plain NumPy arrays, no matplotlib.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .runs import Curve, Run


def mean_curve(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Curves of several seeds -> ``steps, mean, min, max`` over the runs logged at each step."""
    steps = sorted({s for c in curves for s, _ in c})
    if not steps:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    index = {s: i for i, s in enumerate(steps)}
    table = np.full((len(curves), len(steps)), np.nan)
    for r, curve in enumerate(curves):
        for s, v in curve:
            table[r, index[s]] = v if math.isfinite(v) else np.nan
    keep = ~np.all(np.isnan(table), axis=0)
    table = table[:, keep]
    return (np.asarray(steps)[keep], np.nanmean(table, axis=0), np.nanmin(table, axis=0), np.nanmax(table, axis=0))


def grad_norm_table(runs: Sequence[Run], names: Sequence[str] | None = None,
                    levels: bool = False) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-layer (or, with ``levels``, per-level) gradient norms of a group: ``names (by depth),
    steps, log10 norms [L, S]``.

    The log10 norms are averaged over the runs (a geometric mean of the norms); NaN where no run
    logged that layer at that step (or the norm was 0 or not finite). ``names`` fixes the rows (the
    union over every group, so rows line up across variants); default: this group's layers.
    """
    tags: dict[str, str] = {}
    for run in runs:
        for name, tag in (run.grad_levels() if levels else run.grad_norm_layers()):
            tags.setdefault(name, tag)
    rows = sorted(tags) if names is None else list(names)
    steps = sorted({s for run in runs for n in rows if n in tags for s, _ in run.curve(tags[n])})
    if not rows or not steps:
        return [], np.zeros(0, dtype=int), np.zeros((0, 0))
    col = {s: i for i, s in enumerate(steps)}
    total = np.zeros((len(rows), len(steps)))
    count = np.zeros((len(rows), len(steps)))
    for run in runs:
        for row, n in enumerate(rows):
            for s, v in run.curve(tags[n]) if n in tags else []:
                if not levels:  # level tags are log10 already
                    v = math.log10(v) if math.isfinite(v) and v > 0 else math.nan
                if math.isfinite(v):
                    total[row, col[s]] += v
                    count[row, col[s]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return rows, np.asarray(steps), table
