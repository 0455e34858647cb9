"""One run's numbers for the report: which metric to compare, its final and best value, and the
steps and training seconds the run took to reach a target value."""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..run_folder import COMPLETED, STEPS_PER_S, best_key, final_key, final_metrics, headline_metric, metric_tag
from .runs import Curve, ReportError, Run


# ---------------------------------------------------------------- metric
def higher_is_better(metric: str) -> bool:
    return "loss" not in metric


def available_metrics(runs: Sequence[Run]) -> list[str]:
    """Metric names with a ``final_<name>`` value in some metrics.json, in first-seen order."""
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(final_metrics(run.metrics or {})))
    return list(names)


def choose_metric(runs: Sequence[Run], requested: str | None) -> str:
    """The metric to compare: ``requested`` (``psnr`` may stand for ``val_psnr``), else the headline."""
    known = available_metrics(runs)
    if requested:
        for name in (requested, f"val_{requested}"):
            if name in known:
                return name
        if known:
            raise ReportError(f"unknown metric '{requested}'; known: {', '.join(known)}")
        return requested  # no run has any metric (all failed): nothing to check it against
    if "val_psnr" in known:
        return "val_psnr"
    for run in runs:  # the task's headline metric is the one with a best_val_<name>
        headline = headline_metric(run.metrics or {})
        if headline in known:
            return headline
    for name in known:
        if name.startswith("val_") and "loss" not in name:
            return name
    return "val_loss" if "val_loss" in known else (known[0] if known else "val_psnr")


def finite_number(v: Any) -> float | None:
    """``v`` as a finite float; None for anything else (a string, a list, NaN, an integer past a float)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        v = float(v)
    except OverflowError:  # metrics.json may hold 10**400: JSON integers are unbounded
        return None
    return v if math.isfinite(v) else None


def final_value(run: Run, metric: str) -> float | None:
    value = finite_number((run.metrics or {}).get(final_key(metric)))
    if value is None and run.status == COMPLETED:
        curve = run.curve(metric_tag(metric))
        value = finite_number(curve[-1][1]) if curve else None
    return value


def best_value(run: Run, metric: str) -> float | None:
    value = finite_number((run.metrics or {}).get(best_key(metric)))
    if value is not None:
        return value
    values = [v for _, v in run.curve(metric_tag(metric)) if math.isfinite(v)]
    if values:
        return max(values) if higher_is_better(metric) else min(values)
    return final_value(run, metric)


# ---------------------------------------------------------------- target
def steps_to_target(curve: Curve, target: float, higher: bool = True) -> int | None:
    """First logged step whose value reaches ``target`` (>= it, or <= for a loss); None if never."""
    for step, value in curve:
        if math.isfinite(value) and (value >= target if higher else value <= target):
            return step
    return None


def train_seconds_at(run: Run, step: int) -> float | None:
    """Training seconds spent up to ``step``: ``train_time_s * step / steps`` from metrics.json, else
    the ``perf/steps_per_s`` curve integrated (each logged rate covers the steps since the last log)."""
    m = run.metrics or {}
    total, steps = finite_number(m.get("train_time_s")), finite_number(m.get("steps"))
    if total is not None and steps:
        return total * step / steps
    seconds, prev = 0.0, 0
    for s, rate in run.curve(STEPS_PER_S):
        if not (math.isfinite(rate) and rate > 0):
            return None
        seconds += (min(s, step) - prev) / rate
        prev = s
        if s >= step:
            return seconds
    return None

