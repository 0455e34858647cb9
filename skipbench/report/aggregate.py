"""Compute the statistics of the report over groups of runs.

Per group (:mod:`.grouping` says which runs form one): the final and best value of one metric over
seeds (mean, sample std, Student-t 95% CI, :mod:`.stats`), steps and training seconds to reach a
target value, parameters, speed and memory.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..run_folder import COMPLETED, EXCLUDED_KEYS, INTERRUPTED, metric_tag
from .curves import grad_norm_table, mean_curve
from .grouping import (ALIASES, MISSING, differing_keys, format_value, hashable, known_keys, label_keys, resolve_key,
                       short_key, unpoolable_keys, partition)
from .runs import ReportError, Run
from .stats import Summary, t_cdf, t_quantile
from .values import (available_metrics, best_value, choose_metric, final_value, finite_number, higher_is_better,
                     steps_to_target, train_seconds_at)

__all__ = [  # what the report and its tests import from here (some defined in the modules above)
    "ALIASES", "COMPLETED", "EXCLUDED_KEYS", "INTERRUPTED", "Group", "Report", "Summary", "available_metrics",
    "best_value", "build_report", "choose_metric", "differing_keys", "final_value", "format_value", "grad_norm_table",
    "higher_is_better", "known_keys", "label_keys", "mean_curve", "metric_tag", "resolve_key", "short_key",
    "steps_to_target", "t_cdf", "t_quantile", "train_seconds_at",
]


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
    split_keys: list[str] = field(default_factory=list)  # keys added to --group-by's: never pooled
    # run name -> (steps, train seconds) to the target, for every completed run with a curve of the metric
    to_target: dict[str, tuple[int | None, float | None]] = field(default_factory=dict)

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
    _one_task(finished, root)
    metric = choose_metric(finished, metric)
    higher = higher_is_better(metric)
    keys, shown = _group_keys(finished, group_by)
    split = [k for k in keys if group_by and k not in _resolved(finished, group_by)]
    by_key: dict[tuple, list[Run]] = {}
    for run in finished:
        by_key.setdefault(tuple(hashable(run.config.get(k, MISSING)) for k in keys), []).append(run)
    groups = [_group(key, members, shown, metric) for key, members in by_key.items()]
    target_source = "given"
    if target is None:
        target, target_source = _default_target(groups, higher), "default"
    to_target = _to_target(groups, metric, target, higher) if target is not None else {}
    groups.sort(key=lambda g: (1, 0.0, g.label) if g.final.mean is None
                else (0, -g.final.mean if higher else g.final.mean, g.label))
    pooled = _pooled_keys(finished, keys, groups) if group_by else []
    return Report(root=str(root), metric=metric, higher_is_better=higher, target=target, target_source=target_source,
                  group_keys=keys, shown_keys=shown, groups=groups, runs=list(runs), pooled_keys=pooled,
                  split_keys=split, to_target=to_target)


def _group_keys(finished: Sequence[Run], group_by: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The keys the groups are made of, and those shown: ``--group-by``'s, or the differing ones
    (shown: the fewest that tell the groups apart)."""
    if group_by:
        keys = _resolved(finished, group_by)
        split = []  # never pooled, whatever was asked: each key that splits the groups further
        for k in unpoolable_keys(finished):
            if k not in keys and partition(finished, keys + split + [k]) != partition(finished, keys + split):
                split.append(k)
        return keys + split, keys + split
    keys = differing_keys(finished)
    return keys, label_keys(finished, keys)


def _resolved(finished: Sequence[Run], group_by: Sequence[str]) -> list[str]:
    known = known_keys(finished)
    return list(dict.fromkeys(resolve_key(k, known) for k in group_by))


def _one_task(finished: Sequence[Run], root: str) -> None:
    """Each task has its own metric and loss: a report compares the runs of one."""
    counts: dict[str, int] = {}
    for run in finished:
        task = str(run.config.get("task", MISSING))
        counts[task] = counts.get(task, 0) + 1
    if len(counts) > 1:
        shown = ", ".join(f"{t}: {n}" for t, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        first = max(counts, key=counts.get)
        raise ReportError(f"{root}: finished runs of {len(counts)} tasks ({shown}); each task is scored on its own "
                          f"metric, so a report compares one: add --task {first} (or report a folder of one task)")


def _mean_of(runs: Sequence[Run], key: str) -> float | None:
    """Mean of a metrics.json number over the runs that have it."""
    values = [v for v in (finite_number((r.metrics or {}).get(key)) for r in runs) if v is not None]
    return statistics.mean(values) if values else None


def _same_or_none(runs: Sequence[Run], key: str) -> float | None:
    """A structural number (parameters) of a group: its one value, or None when its runs differ in it
    (a mean over different architectures would describe none of them)."""
    values = {v for v in (finite_number((r.metrics or {}).get(key)) for r in runs) if v is not None}
    return values.pop() if len(values) == 1 else None


def _group(key: tuple, members: list[Run], shown: Sequence[str], metric: str) -> Group:
    """One group's statistics: the metric over its completed runs, size over all its runs, speed and
    memory over the completed ones."""
    first = members[0].config
    g = Group(key=key, labels={k: first.get(k, MISSING) for k in shown}, runs=members)
    done = g.completed
    g.final = Summary.of(final_value(r, metric) for r in done)
    g.best = Summary.of(best_value(r, metric) for r in done)
    g.params = _same_or_none(members, "params")
    g.steps_per_s = _mean_of(done, "steps_per_s")
    g.peak_memory_mb = _mean_of(done, "peak_memory_mb")
    g.activations_mb = _mean_of(done, "activations_mb")
    return g


def _default_target(groups: Sequence[Group], higher: bool) -> float | None:
    """The worst group's mean final value: a level every group reaches on average."""
    means = [g.final.mean for g in groups if g.final.mean is not None]
    return (min(means) if higher else max(means)) if means else None


def _to_target(groups: Sequence[Group], metric: str, target: float, higher: bool) -> dict[str, tuple]:
    """Steps and training seconds to ``target`` of every completed run with a curve of the metric,
    per group (in the group) and per run name (returned)."""
    tag = metric_tag(metric)
    per_run: dict[str, tuple] = {}
    for g in groups:
        for run in g.completed:
            curve = run.curve(tag)
            if not curve:
                continue
            step = steps_to_target(curve, target, higher)
            seconds = train_seconds_at(run, step) if step is not None else None
            g.steps_to_target.append(step)
            g.seconds_to_target.append(seconds)
            per_run[run.name] = (step, seconds)
    return per_run


def _pooled_keys(finished: Sequence[Run], keys: Sequence[str], groups: Sequence[Group]) -> list[str]:
    """Keys outside ``--group-by`` whose value differs inside some group: the groups pool them."""
    others = [k for k in differing_keys(finished) if k not in keys]
    return [k for k in others if any(len({hashable(r.config.get(k, MISSING)) for r in g.runs}) > 1 for g in groups)]
