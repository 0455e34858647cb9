"""Lesion studies (Veit, Wilber & Belongie 2016): delete parts of a trained network at test time.

Pure functions on ``(model, score)``, where ``score(model) -> {"loss": .., <metric>: ..}`` evaluates the
model as it stands (eval mode, the run's validation split). Nothing here copies or edits weights: a
lesion switches the ``lesioned`` flag of a unit (:class:`skipbench.models.blocks.Lesionable`) for the
duration of one evaluation and switches it back, so the model (and its checkpoint) stay as trained.

* single: every deletable unit alone (residual/highway: the branch goes, the carried input stays;
  a dense layer adds zeros; a plain block becomes the identity where in and out shapes agree);
* k random units together, ``k = 1 .. K``, over seeded draws (``seeds`` purpose ``lesion``);
* each long-skip level dropped alone (its merge sees zeros);
* optionally, adjacent same-shape blocks of a stage swapped (Veit's re-ordering).
"""

from __future__ import annotations

import statistics
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from .. import seeds
from ..errors import ConfigError
from ..models.blocks import Lesionable

Score = Callable[[nn.Module], dict[str, float]]


def lesion_units(model: nn.Module, long_skips: bool = False) -> list[tuple[str, nn.Module]]:
    """``(name, unit)`` in forward order: the blocks (and dense layers) a lesion can delete, or with
    ``long_skips`` the long-skip merges. A unit inside another unit (a highway block's transform) is
    part of it, not a unit of its own."""
    from ..models.merges import MERGES

    merge_types = tuple(MERGES.values())
    units: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if not isinstance(m, Lesionable) or not m.lesion_unit or isinstance(m, merge_types) != long_skips:
            continue
        if any(name.startswith(u + ".") for u, _ in units):
            continue
        units.append((name, m))
    return units


def kind_of(unit: nn.Module) -> str:
    """``residual``, ``plain``, ... (the block's name in BLOCKS), ``dense_layer`` or the merge's name."""
    from ..models.blocks import BLOCKS
    from ..models.merges import MERGES

    for table in (BLOCKS, MERGES):
        for k, cls in table.items():
            if type(unit) is cls:
                return k
    return "dense_layer" if type(unit).__name__ == "DenseLayer" else type(unit).__name__


@contextmanager
def lesioned(units: Sequence[nn.Module]) -> Iterator[None]:
    """Delete ``units`` for the duration of the block (each one's flag is restored after, even on error)."""
    for u in units:
        if (why := u.lesion_blocker()) is not None:
            raise ConfigError(f"cannot delete {type(u).__name__}: {why}")
    old = [u.lesioned for u in units]
    try:
        for u in units:
            u.lesioned = True
        yield
    finally:
        for u, was in zip(units, old):
            u.lesioned = was


def select_units(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """The units called ``names``; a one-line error naming the deletable ones for a unit that does not
    exist, and saying why for one that cannot be deleted (a plain block that changes shape, no long skip)."""
    units = dict(lesion_units(model)) | dict(lesion_units(model, long_skips=True))
    deletable = [n for n, u in units.items() if u.lesion_blocker() is None]
    for n in names:
        if n not in units:
            raise ConfigError(f"lesion.blocks={n}: no such block in this model; deletable: {', '.join(deletable) or '-'}")
        if (why := units[n].lesion_blocker()) is not None:
            raise ConfigError(f"lesion.blocks={n}: cannot be deleted ({why}); deletable: {', '.join(deletable) or '-'}")
    return [units[n] for n in names]


def _entry(name: str, unit: nn.Module, scores: dict[str, float]) -> dict:
    return {"block": name, "kind": kind_of(unit), **scores}


def single_lesions(model: nn.Module, score: Score, progress: Callable = iter) -> tuple[list[dict], list[dict]]:
    """Each deletable unit deleted alone: ``([{"block", "kind", "loss", <metric>...}], [{"block", "why"}])``,
    the second list naming the units that cannot be deleted and why."""
    done, refused = [], []
    for name, unit in progress(lesion_units(model)):
        if (why := unit.lesion_blocker()) is not None:
            refused.append({"block": name, "kind": kind_of(unit), "why": why})
            continue
        with lesioned([unit]):
            done.append(_entry(name, unit, score(model)))
    return done, refused


def k_draws(n: int, k: int, draws: int, seed: int) -> list[list[int]]:
    """``draws`` seeded choices of ``k`` of ``n`` unit indices (sorted), one stream per ``(k, draw)``."""
    return [sorted(torch.randperm(n, generator=seeds.generator(seed, "lesion", k * 100_003 + d))[:k].tolist())
            for d in range(draws)]


def k_lesions(model: nn.Module, score: Score, metric: str, k_max: int, draws: int, seed: int,
              progress: Callable = iter) -> list[dict]:
    """``k`` random deletable units deleted together, ``k = 1 .. min(k_max, deletable)``, ``draws`` draws
    each: per ``k`` the drawn blocks, each draw's metric and loss, and their mean and spread."""
    units = [(n, u) for n, u in lesion_units(model) if u.lesion_blocker() is None]
    curve = []
    for k in progress(range(1, min(k_max, len(units)) + 1)):
        # all-of-n has one draw only; fewer distinct subsets than draws repeat, which is harmless
        picks = k_draws(len(units), k, 1 if k == len(units) else draws, seed)
        results = []
        for pick in picks:
            with lesioned([units[i][1] for i in pick]):
                results.append(score(model))
        values = [r[metric] for r in results]
        curve.append({"k": k, "blocks": [[units[i][0] for i in p] for p in picks], metric: values,
                      "loss": [r["loss"] for r in results], "mean": statistics.mean(values),
                      "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                      "loss_mean": statistics.mean(r["loss"] for r in results)})
    return curve


def long_skip_lesions(model: nn.Module, score: Score) -> list[dict]:
    """Each long-skip level dropped alone (the merge sees zeros instead of the encoder's features)."""
    out = []
    for name, unit in lesion_units(model, long_skips=True):
        if unit.lesion_blocker() is None:
            with lesioned([unit]):
                out.append(_entry(name, unit, score(model)))
    return out


@contextmanager
def swapped(stage: nn.Sequential, i: int) -> Iterator[None]:
    """Blocks ``i`` and ``i + 1`` of a stage in swapped order for the duration of the block."""
    mods = stage._modules
    a, b = str(i), str(i + 1)
    mods[a], mods[b] = mods[b], mods[a]
    try:
        yield
    finally:
        mods[a], mods[b] = mods[b], mods[a]


def reorder_lesions(model: nn.Module, score: Score) -> list[dict]:
    """Each pair of adjacent blocks of a stage swapped, where both map ``C -> C`` (so any order fits)."""
    from ..models.blocks import Stage

    out = []
    for name, stage in model.named_modules():
        if not isinstance(stage, Stage):
            continue
        for i in range(1, len(stage) - 1):  # block 0 may change channels; 1..n-1 all keep them
            with swapped(stage, i):
                out.append({"blocks": [f"{name}.{i}", f"{name}.{i + 1}"], **score(model)})
    return out


def smoothness(baseline: float, curve: list[dict], higher_is_better: bool = True) -> float | None:
    """The largest share of the metric's total loss at ``K`` taken by one more deletion (``k -> k + 1``,
    ``k = 0`` the intact model): about ``1 / K`` for a steady decline, 1 for a cliff. None without a loss."""
    means = [baseline] + [c["mean"] for c in curve]
    sign = 1.0 if higher_is_better else -1.0
    total = sign * (means[0] - means[-1])
    if len(means) < 2 or total <= 0:
        return None
    return max(sign * (a - b) for a, b in zip(means, means[1:])) / total
