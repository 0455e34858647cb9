"""Group runs and compute the statistics of the report.

Runs are grouped by the config keys that differ between them (the training ``seed`` and keys that do
not change what is trained are left out), or by the keys the user names. Per group: the final and
best value of one metric over seeds (mean, sample std, Student-t 95% CI), steps and training seconds
to reach a target value, parameters and speed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from .runs import COMPLETED, INTERRUPTED, Curve, ReportError, Run

# Keys that never define a group: the training seed, and settings that do not change the result.
EXCLUDED_KEYS = ("seed", "resume", "trainer.progress", "trainer.device", "trainer.num_threads")
ALIASES = {"model": "model.name"}
_MISSING = "—"  # shown for a key a run's config does not have


# ---------------------------------------------------------------- Student t
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t (e.g. ``t_quantile(0.975, 2) = 4.3027``), by bisection on the CDF."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass
class Summary:
    """Mean, sample std (ddof=1) and 95% CI half-width (Student t, n >= 3) of some values."""

    values: list[float]
    mean: float | None = None
    std: float | None = None
    ci95: float | None = None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> "Summary":
        vals = [float(v) for v in values if v is not None and math.isfinite(v)]
        s = cls(vals)
        if vals:
            s.mean = statistics.mean(vals)
        if len(vals) >= 2:
            s.std = statistics.stdev(vals)
        if len(vals) >= 3:
            s.ci95 = t_quantile(0.975, len(vals) - 1) * s.std / math.sqrt(len(vals))
        return s

    @property
    def n(self) -> int:
        return len(self.values)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "ci95": self.ci95, "values": self.values}


# ---------------------------------------------------------------- metric
def higher_is_better(metric: str) -> bool:
    return "loss" not in metric


def metric_tag(metric: str) -> str:
    """TensorBoard tag of a metric name as in metrics.json (``val_psnr`` -> ``metric/val_psnr``)."""
    if metric == "val_loss":
        return "loss/val"
    if metric == "train_loss":
        return "loss/train"
    return f"metric/{metric}"


def available_metrics(runs: Sequence[Run]) -> list[str]:
    """Metric names with a ``final_<name>`` value in some metrics.json, in first-seen order."""
    names: dict[str, None] = {}
    for run in runs:
        for key in run.metrics or {}:
            if key.startswith("final_"):
                names[key[len("final_"):]] = None
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
        for key in run.metrics or {}:
            if key.startswith("best_val_") and key[len("best_"):] in known:
                return key[len("best_"):]
    for name in known:
        if name.startswith("val_") and "loss" not in name:
            return name
    return "val_loss" if "val_loss" in known else (known[0] if known else "val_psnr")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def final_value(run: Run, metric: str) -> float | None:
    value = _number((run.metrics or {}).get(f"final_{metric}"))
    if value is None and run.status == COMPLETED:
        curve = run.curve(metric_tag(metric))
        value = _number(curve[-1][1]) if curve else None
    return value


def best_value(run: Run, metric: str) -> float | None:
    value = _number((run.metrics or {}).get(f"best_{metric}"))
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
    total, steps = _number(m.get("train_time_s")), _number(m.get("steps"))
    if total is not None and steps:
        return total * step / steps
    seconds, prev = 0.0, 0
    for s, rate in run.curve("perf/steps_per_s"):
        if not (math.isfinite(rate) and rate > 0):
            return None
        seconds += (min(s, step) - prev) / rate
        prev = s
        if s >= step:
            return seconds
    return None


# ---------------------------------------------------------------- grouping
def known_keys(runs: Sequence[Run]) -> list[str]:
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(run.config))
    return list(keys)


def resolve_key(key: str, known: Sequence[str]) -> str:
    """A dotted config key, an alias (``model`` -> ``model.name``) or an unambiguous last part
    (``lr`` -> ``optimizer.lr``)."""
    key = key.strip()
    if key in ALIASES:
        return ALIASES[key]
    if key in known:
        return key
    tails = [k for k in known if k.endswith(f".{key}")]
    if len(tails) == 1:
        return tails[0]
    hint = f"; did you mean {' or '.join(tails)}?" if tails else ""
    raise ReportError(f"unknown config key '{key}' for --group-by{hint} (keys look like model.name, optimizer.lr)")


def _priority(key: str) -> int:
    """model.name first, then the component names (task, optimizer, ...), then the config order."""
    return 0 if key == "model.name" else 1 if "." not in key else 2


def differing_keys(runs: Sequence[Run], exclude: Iterable[str] = EXCLUDED_KEYS) -> list[str]:
    """Config keys whose value is not the same in every run (a missing key counts as a value)."""
    exclude = set(exclude)
    keys = [k for k in known_keys(runs) if k not in exclude]
    out = [k for k in keys if len({_hashable(run.config.get(k, _MISSING)) for run in runs}) > 1]
    return sorted(out, key=_priority)  # stable: config order within a priority


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _partition(runs: Sequence[Run], keys: Sequence[str]) -> set[frozenset[int]]:
    blocks: dict[tuple, set[int]] = {}
    for i, run in enumerate(runs):
        blocks.setdefault(tuple(_hashable(run.config.get(k, _MISSING)) for k in keys), set()).add(i)
    return {frozenset(b) for b in blocks.values()}


def label_keys(runs: Sequence[Run], keys: Sequence[str]) -> list[str]:
    """The fewest of ``keys`` (dropping from the end) that still tell the groups apart:
    ``model.long_skip`` need not be shown next to ``model.name`` when the name decides it."""
    keep = list(keys)
    full = _partition(runs, keep)
    for key in reversed(list(keys)):
        trial = [k for k in keep if k != key]
        if trial and _partition(runs, trial) == full:
            keep = trial
    return keep


def short_key(key: str) -> str:
    return {v: k for k, v in ALIASES.items()}.get(key, key)


def format_value(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if v is None:
        return "null"
    return str(v)


@dataclass
class Group:
    key: tuple
    labels: dict[str, Any]  # the shown keys -> value
    runs: list[Run]  # finished runs (completed, diverged, failed) of the group
    final: Summary = field(default_factory=lambda: Summary([]))
    best: Summary = field(default_factory=lambda: Summary([]))
    steps_to_target: list[int | None] = field(default_factory=list)  # per completed run with a curve
    seconds_to_target: list[float | None] = field(default_factory=list)
    params: float | None = None
    steps_per_s: float | None = None
    peak_memory_mb: float | None = None  # mean over completed runs (train/memory.py: CUDA allocated or CPU RSS)
    activations_mb: float | None = None  # saved for backward per training batch (exact, device-independent)

    @property
    def label(self) -> str:
        if not self.labels:
            return "all runs"
        return ", ".join(f"{short_key(k)}={format_value(v)}" for k, v in self.labels.items())

    @property
    def failed(self) -> int:
        return sum(run.failed for run in self.runs)

    @property
    def completed(self) -> list[Run]:
        return [run for run in self.runs if run.status == COMPLETED]

    @property
    def reached(self) -> list[int]:
        return [s for s in self.steps_to_target if s is not None]

    @property
    def mean_steps_to_target(self) -> float | None:
        return statistics.mean(self.reached) if self.reached else None

    @property
    def mean_seconds_to_target(self) -> float | None:
        vals = [s for s in self.seconds_to_target if s is not None]
        return statistics.mean(vals) if vals else None


@dataclass
class Report:
    root: str
    metric: str
    higher_is_better: bool
    target: float | None
    target_source: str  # "given" or "default"
    group_keys: list[str]  # keys the groups are made of
    shown_keys: list[str]  # the subset shown as columns
    groups: list[Group]  # best first
    runs: list[Run]  # every run found
    pooled_keys: list[str] = field(default_factory=list)  # keys differing inside groups (--group-by)

    @property
    def incomplete(self) -> list[Run]:
        return [run for run in self.runs if not run.finished and run.status != INTERRUPTED]

    @property
    def interrupted(self) -> list[Run]:
        return [run for run in self.runs if run.status == INTERRUPTED]

    @property
    def finished(self) -> list[Run]:
        return [run for run in self.runs if run.finished]

    def group_of(self, run: Run) -> Group | None:
        for g in self.groups:
            if any(r is run for r in g.runs):
                return g
        return None


def build_report(
    runs: Sequence[Run],
    root: str = ".",
    metric: str | None = None,
    group_by: Sequence[str] | None = None,
    target: float | None = None,
) -> Report:
    """Group the finished runs and compute every statistic of the report."""
    finished = [run for run in runs if run.finished]
    if not finished:
        raise ReportError(
            f"{root}: {len(runs)} run(s) found, none finished yet (no metrics.json, or interrupted); nothing to compare"
        )
    metric = choose_metric(finished, metric)
    higher = higher_is_better(metric)
    if group_by:
        known = known_keys(finished)
        keys = list(dict.fromkeys(resolve_key(k, known) for k in group_by))
        shown = keys
    else:
        keys = differing_keys(finished)
        shown = label_keys(finished, keys)

    by_key: dict[tuple, list[Run]] = {}
    for run in finished:
        by_key.setdefault(tuple(_hashable(run.config.get(k, _MISSING)) for k in keys), []).append(run)
    groups = []
    for key, members in by_key.items():
        first = members[0].config
        g = Group(key=key, labels={k: first.get(k, _MISSING) for k in shown}, runs=members)
        done = g.completed
        g.final = Summary.of(final_value(r, metric) for r in done)
        g.best = Summary.of(best_value(r, metric) for r in done)
        params = [p for p in (_number((r.metrics or {}).get("params")) for r in members) if p is not None]
        speeds = [s for s in (_number((r.metrics or {}).get("steps_per_s")) for r in done) if s is not None]
        g.params = statistics.mean(params) if params else None
        g.steps_per_s = statistics.mean(speeds) if speeds else None
        peaks = [p for p in (_number((r.metrics or {}).get("peak_memory_mb")) for r in done) if p is not None]
        g.peak_memory_mb = statistics.mean(peaks) if peaks else None
        acts = [a for a in (_number((r.metrics or {}).get("activations_mb")) for r in done) if a is not None]
        g.activations_mb = statistics.mean(acts) if acts else None
        groups.append(g)

    target_source = "given"
    if target is None:
        means = [g.final.mean for g in groups if g.final.mean is not None]
        target = (min(means) if higher else max(means)) if means else None
        target_source = "default"
    if target is not None:
        tag = metric_tag(metric)
        for g in groups:
            for run in g.completed:
                curve = run.curve(tag)
                if not curve:
                    continue
                step = steps_to_target(curve, target, higher)
                g.steps_to_target.append(step)
                g.seconds_to_target.append(train_seconds_at(run, step) if step is not None else None)

    def order(g: Group) -> tuple:
        if g.final.mean is None:
            return (1, 0.0, g.label)
        return (0, -g.final.mean if higher else g.final.mean, g.label)

    groups.sort(key=order)
    pooled = []
    if group_by:
        others = [k for k in differing_keys(finished) if k not in keys]
        pooled = [k for k in others if any(len({_hashable(r.config.get(k, _MISSING)) for r in g.runs}) > 1 for g in groups)]
    return Report(root=str(root), metric=metric, higher_is_better=higher, target=target, target_source=target_source,
                  group_keys=keys, shown_keys=shown, groups=groups, runs=list(runs), pooled_keys=pooled)


# ---------------------------------------------------------------- curves for plots
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
