"""Which config keys make the groups of the report, and how a group is labelled.

Runs are grouped by the config keys that differ between them (the training ``seed`` and keys that do
not change what is trained, :data:`~skipbench.run_folder.EXCLUDED_KEYS`, are left out), or by the
keys the user names; the label shows the fewest keys that still tell the groups apart.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..run_folder import EXCLUDED_KEYS
from .runs import ReportError, Run

ALIASES = {"model": "model.name"}
# Runs that differ in these are never pooled into one row, whatever --group-by says: another task, data
# set, step budget or architecture is another experiment (a mean over them would mean nothing).
NEVER_POOLED = ("task", "dataset", "trainer.max_steps")
NEVER_POOLED_PREFIXES = ("task.", "dataset.", "model.")
MISSING = "—"  # shown for a key a run's config does not have


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
    out = [k for k in keys if len({hashable(run.config.get(k, MISSING)) for run in runs}) > 1]
    return sorted(out, key=_priority)  # stable: config order within a priority


def unpoolable_keys(runs: Sequence[Run]) -> list[str]:
    """The differing keys that make runs incomparable (:data:`NEVER_POOLED`), in grouping order."""
    return [k for k in differing_keys(runs) if k in NEVER_POOLED or k.startswith(NEVER_POOLED_PREFIXES)]


def hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def partition(runs: Sequence[Run], keys: Sequence[str]) -> set[frozenset[int]]:
    blocks: dict[tuple, set[int]] = {}
    for i, run in enumerate(runs):
        blocks.setdefault(tuple(hashable(run.config.get(k, MISSING)) for k in keys), set()).add(i)
    return {frozenset(b) for b in blocks.values()}


def label_keys(runs: Sequence[Run], keys: Sequence[str]) -> list[str]:
    """The fewest of ``keys`` (dropping from the end) that still tell the groups apart:
    ``model.long_skip`` need not be shown next to ``model.name`` when the name decides it."""
    keep = list(keys)
    full = partition(runs, keep)
    for key in reversed(list(keys)):
        trial = [k for k in keep if k != key]
        if trial and partition(runs, trial) == full:
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

