"""Effects over seeds and the verdict rule every claim uses.

An *effect* is a difference between two groups of runs (B - A), paired by seed where both groups
have the same seeds (same data order, same noise: the pairing removes that shared variance), else
Welch's unpaired difference. Its 95 % confidence interval uses Student's t
(:func:`skipbench.report.aggregate.t_quantile`).

Each effect also says, at its plain 95 % CI, whether it *supports* the claim (the CI lies on the
claimed side of 0, or inside ``[-margin, +margin]`` for "similar") or only *leans* (its mean does).
The claim's verdict is not read off these fixed-n intervals -- looking again after adding seeds would
inflate the error rate -- but decided by the sequential rule of :mod:`.sequential`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..report.aggregate import t_quantile

@dataclass
class Effect:
    """``mean`` of B - A with a 95 % CI half-width ``ci`` (None when fewer than 2 pairs)."""

    name: str  # what is compared, e.g. "unet_concat - autoencoder, final val PSNR (dB)"
    mean: float
    ci: float | None
    n: int
    direction: str  # ">0", "<0" or "~0" (equivalence within margin)
    margin: float = 0.0
    paired: bool = True
    se: float | None = None  # standard error of the mean difference (None when fewer than 2 pairs)
    df: float = 0.0  # degrees of freedom of its t distribution
    # the groups' values (A, B) as given: a sequential look recomputes the effect on fewer seeds
    samples: tuple[Any, Any] = field(default=((), ()), repr=False, compare=False)

    @property
    def low(self) -> float:
        return self.mean - (self.ci if self.ci is not None else math.inf)

    @property
    def high(self) -> float:
        return self.mean + (self.ci if self.ci is not None else math.inf)

    @property
    def supports(self) -> bool:
        if self.ci is None or not math.isfinite(self.mean):
            return False
        if self.direction == ">0":
            return self.low > 0
        if self.direction == "<0":
            return self.high < 0
        return -self.margin <= self.low and self.high <= self.margin

    @property
    def leans(self) -> bool:
        if not math.isfinite(self.mean):
            return False
        if self.direction == ">0":
            return self.mean > 0
        if self.direction == "<0":
            return self.mean < 0
        return abs(self.mean) <= self.margin

    @property
    def reason(self) -> str:
        """Why an effect does not support the claim, read off its numbers ("" when it does)."""
        if self.supports:
            return ""
        if self.ci is None or not math.isfinite(self.mean):
            return "too few paired seeds for an interval"
        if self.direction == "~0":
            if abs(self.mean) > self.margin:
                return f"the groups differ by more than the ±{self.margin:g} margin"
            return f"the interval is wider than the ±{self.margin:g} margin: {self.n} seeds cannot show equivalence here"
        if self.leans:
            return f"right direction, but the interval includes 0 with {self.n} seeds"
        return "measured the other way"

    def text(self, digits: int = 3) -> str:
        ci = "n/a" if self.ci is None else f"{self.ci:.{digits}g}"
        lo_hi = "" if self.ci is None else f", CI [{self.low:.{digits}g}, {self.high:.{digits}g}]"
        want = {">0": "> 0", "<0": "< 0"}.get(self.direction, f"within ±{self.margin:g}")
        mark = "supports" if self.supports else ("leans" if self.leans else "against") + f" — {self.reason}"
        return f"{self.name} = {self.mean:.{digits}g} ± {ci}{lo_hi} (n={self.n}{'' if self.paired else ', unpaired'}; " \
               f"claimed {want}: {mark})"


def effect(name: str, a: dict[int, float] | Sequence[float], b: dict[int, float] | Sequence[float],
           direction: str, margin: float = 0.0) -> Effect:
    """B - A over seeds. Dicts keyed by seed are paired on their common seeds; lists are unpaired (Welch)."""
    if direction not in (">0", "<0", "~0"):
        raise ValueError(f"direction must be '>0', '<0' or '~0', got {direction!r}")
    samples = (dict(a), dict(b)) if isinstance(a, dict) and isinstance(b, dict) else (list(a), list(b))
    if isinstance(a, dict) and isinstance(b, dict):
        seeds = sorted(set(a) & set(b))
        diffs = [b[s] - a[s] for s in seeds if math.isfinite(a[s]) and math.isfinite(b[s])]
        se, df, ci = None, float(len(diffs) - 1), None
        if len(diffs) >= 2:
            se = statistics.stdev(diffs) / math.sqrt(len(diffs))
            ci = t_quantile(0.975, df) * se
        return Effect(name, statistics.mean(diffs) if diffs else math.nan, ci, len(diffs), direction, margin,
                      se=se, df=df, samples=samples)
    xa = [v for v in (a.values() if isinstance(a, dict) else a) if math.isfinite(v)]
    xb = [v for v in (b.values() if isinstance(b, dict) else b) if math.isfinite(v)]
    if not xa or not xb:
        return Effect(name, math.nan, None, 0, direction, margin, paired=False, samples=samples)
    mean = statistics.mean(xb) - statistics.mean(xa)
    if len(xa) < 2 or len(xb) < 2:
        return Effect(name, mean, None, min(len(xa), len(xb)), direction, margin, paired=False, samples=samples)
    va, vb = statistics.variance(xa) / len(xa), statistics.variance(xb) / len(xb)
    se = math.sqrt(va + vb)
    # Welch-Satterthwaite degrees of freedom (se = 0: identical constants, any df will do)
    df = (va + vb) ** 2 / (va**2 / (len(xa) - 1) + vb**2 / (len(xb) - 1)) if se > 0 else len(xa) + len(xb) - 2
    return Effect(name, mean, t_quantile(0.975, df) * se, min(len(xa), len(xb)), direction, margin, paired=False,
                  se=se, df=df, samples=samples)
