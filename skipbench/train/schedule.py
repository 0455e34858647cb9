"""Learning-rate schedules as ``LambdaLR`` factories: ``factory(optimizer, total_steps)``."""

from __future__ import annotations

import bisect
import math
from typing import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def constant(optimizer: Optimizer, total_steps: int) -> LambdaLR:
    return LambdaLR(optimizer, lambda step: 1.0)


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup_steps: int = 100, min_lr_ratio: float = 0.0) -> LambdaLR:
    """Linear warmup over ``warmup_steps`` (from lr/warmup to lr), then cosine to ``lr * min_lr_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def multistep(optimizer: Optimizer, total_steps: int, milestones: Sequence[float] = (0.5, 0.75),
              gamma: float = 0.1) -> LambdaLR:
    """Step decay (He et al. 2016a): ``lr * gamma ** (milestones passed)``. ``milestones`` are fractions of
    ``total_steps``: after ``round(f * total_steps)`` optimizer steps the rate is multiplied by ``gamma`` once
    more (CIFAR: 0.5 and 0.75 of 64k steps = / 10 at 32k and 48k), so a shorter run keeps the schedule's shape."""
    edges = sorted(round(float(m) * total_steps) for m in milestones)
    return LambdaLR(optimizer, lambda step: gamma ** bisect.bisect_right(edges, step))
