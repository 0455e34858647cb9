"""Every random stream of a run, derived in one place from ``(seed, purpose, k)``.

A stream's generator seed is a hash of its purpose, the seed and an index, so no two purposes share a
seed (step ``k``'s noise and epoch ``k``'s shuffle used to start from the same number), a stream never
depends on which other stream drew first, and a new purpose (a landscape direction, a lesion draw)
leaves every existing stream as it was. ``PURPOSES`` is the table of them; :func:`derive` refuses any
other name, so a typo cannot silently open a new stream.

Imports nothing heavy at module level: :func:`derive` is pure Python; only :func:`generator` and
:func:`seeded` need torch.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch

# purpose -> what draws from it, and what ``seed`` and ``k`` are for it
PURPOSES: dict[str, str] = {
    "init": "the model's initial weights (seed: the run seed)",
    "shuffle": "the training split's order in epoch k (seed: the run seed)",
    "noise": "the task's input noise (denoise) of training step k (seed: the run seed)",
    "val_noise": "the validation inputs' noise, the same at every eval of every run (seed: VAL_NOISE_SEED)",
    "probe_batch": "the noise of the batch a probe measures (seed: the run seed)",
    "probe_direction": "a probe's random input perturbations and projections (seed: the run seed)",
    "landscape": "loss-landscape direction k (seed: the run seed)",
    "lesion": "lesion draw k: which blocks are deleted together (seed: the run seed)",
    "drop_path": "stochastic depth: whether block l runs in its n-th training forward, k = (n, l) (seed: the run seed)",
    "augment": "training step k's random crop offsets and flips (seed: the run seed)",
    "stats_simulation": "a seeded statistics simulation, trial k (seed: the simulation's seed)",
    "data": "a built-in data set's images, stream k (seed: dataset.seed)",
    "data_split": "a data set's train/val split order (seed: dataset.seed)",
    "data_crop": "a folder data set's crops of one file, k = a hash of its path (seed: dataset.seed)",
}

VAL_NOISE_SEED = 0  # the validation noise ignores the run seed: every run scores the same noisy inputs


def derive(seed: int, purpose: str, k: int | tuple[int, ...] = 0) -> int:
    """A 63-bit generator seed for stream ``k`` of ``purpose`` under ``seed`` (stable across processes,
    platforms and Python versions: a BLAKE2 hash, not Python's salted ``hash``). ``k`` may be a tuple of
    indices (``(step, block)``): each tuple is a stream of its own, and an int ``k`` is the 1-tuple's stream."""
    if purpose not in PURPOSES:
        raise KeyError(f"unknown random stream '{purpose}'; known: {', '.join(PURPOSES)}")
    index = ":".join(str(int(i)) for i in k) if isinstance(k, tuple) else str(int(k))
    digest = hashlib.blake2b(f"skipbench:{purpose}:{int(seed)}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # torch takes seeds below 2**63


def generator(seed: int, purpose: str, k: int | tuple[int, ...] = 0, device: "torch.device | str" = "cpu") -> "torch.Generator":
    """A fresh ``torch.Generator`` on ``device`` seeded for stream ``k`` of ``purpose``."""
    import torch

    return torch.Generator(device).manual_seed(derive(seed, purpose, k))


@contextmanager
def seeded(seed: int, purpose: str, k: int = 0) -> Iterator[None]:
    """Run a block that draws from torch's global CPU RNG (``nn.init`` does) from stream ``k`` of
    ``purpose``, and leave the global RNG as it was before the block."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive(seed, purpose, k))
        yield
