"""Seeds until decided: a sequential rule that keeps the error rate honest over repeated looks.

A claim is looked at after ``start`` seeds, then after every ``step`` more, up to ``max_seeds`` (the
*looks* ``n_1 < n_2 < ... < n_K``, fixed by the config before any data is seen). At each look every
effect of the claim (B - A, paired by seed) gets a two-sided p-value from Student's t:

- directed effect (``>0`` / ``<0``): ``p = 2 (1 - T_df(|mean| / se))``; decided *for* when the mean
  is on the claimed side, *against* otherwise;
- similarity (``~0`` within ``±margin``): ``p = 2 (1 - T_df(| |mean| - margin | / se))``, i.e. the
  smallest level whose interval lies entirely inside the margin (*for*) or entirely outside it
  (*against*: the similarity is excluded).

**Alpha spending** (Lan & DeMets 1983): a spending function ``f(t)`` with ``f(1) = 1`` gives look ``k``
the weight ``w_k = f(t_k) - f(t_{k-1})``, ``t_k = n_k / n_K``. An effect's *sequential p-value* is
``P = min_k p_k / w_k``; by the union bound, ``Pr(P <= a) <= sum_k a w_k = a`` under its null whatever
the correlation between looks and whenever one stops, so ``P`` is a valid p-value (a Bonferroni
allocation of the spent alpha over the looks: conservative next to exact group-sequential boundaries,
but exact for t statistics with an unknown variance, which the boundaries' normal theory is not).
``pocock`` spending, ``f(t) = ln(1 + (e - 1) t)``, spends much early (large effects stop at 3 seeds);
``obrien_fleming``, ``f(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt t) / alpha``, saves it for the last look.

**Holm** (1979) across the effects of one claim: the sequential p-values, sorted, are compared with
``alpha / m, alpha / (m - 1), ...``; an effect is decided when its Holm-adjusted ``P`` is <= alpha.
So the chance that any effect of a claim is decided wrongly stays <= alpha (family-wise).

Verdict words: **holds** (every effect decided for), **does not hold** (some against, none for),
**mixed** (some for, some against), **undecided at n = N** (none against, some undecided), with the
smallest effect N seeds could have detected (80 % power at the last look's level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import ConfigError
from ..report.stats import t_cdf, t_quantile
from .verdict import Effect, effect

HOLDS, NOT, MIXED, UNDECIDED = "holds", "does not hold", "mixed", "undecided"
FOR, AGAINST = "for", "against"
SPENDING = ("pocock", "obrien_fleming")
POWER = 0.8  # the power at which the smallest detectable effect is stated


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _z(p: float) -> float:
    """Standard normal quantile by bisection on ``_phi`` (no SciPy)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _phi(mid) < p else (lo, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Schedule:
    """The looks (seeds after which a claim is decided) and how alpha is spent over them."""

    start: int = 3
    step: int = 3
    max_seeds: int = 9
    alpha: float = 0.05
    spending: str = "pocock"

    def __post_init__(self) -> None:
        if not (isinstance(self.start, int) and self.start >= 2):
            raise ConfigError(f"seeds.start={self.start!r}: must be an integer >= 2 (an interval needs 2 seeds)")
        if not (isinstance(self.step, int) and self.step >= 1):
            raise ConfigError(f"seeds.step={self.step!r}: must be an integer >= 1")
        if not (isinstance(self.max_seeds, int) and self.max_seeds >= self.start):
            raise ConfigError(f"seeds.max={self.max_seeds!r}: must be an integer >= seeds.start ({self.start})")
        if not 0.0 < float(self.alpha) < 1.0:
            raise ConfigError(f"alpha={self.alpha!r}: must lie strictly between 0 and 1")
        if self.spending not in SPENDING:
            raise ConfigError(f"spending={self.spending!r}: allowed: {', '.join(SPENDING)}")

    @property
    def looks(self) -> list[int]:
        """``[3, 6, 9]``: the seed counts at which the claim is decided (the last one is ``max_seeds``)."""
        out = list(range(self.start, self.max_seeds + 1, self.step))
        return out if out[-1] == self.max_seeds else [*out, self.max_seeds]

    def spent(self, t: float) -> float:
        """Fraction ``f(t)`` of alpha spent by information fraction ``t`` (``f(0) = 0``, ``f(1) = 1``)."""
        if t <= 0:
            return 0.0
        if self.spending == "pocock":
            return math.log1p((math.e - 1.0) * min(t, 1.0))
        z = _z(1.0 - self.alpha / 2.0)
        return min(1.0, 2.0 * (1.0 - _phi(z / math.sqrt(min(t, 1.0)))) / self.alpha)

    @property
    def weights(self) -> list[float]:
        """``w_k``: the share of alpha look ``k`` may spend (they sum to 1)."""
        fs = [self.spent(n / self.max_seeds) for n in self.looks]
        return [f - g for f, g in zip(fs, [0.0, *fs[:-1]])]

    def next_seeds(self, done: int) -> list[int]:
        """The seeds of the next step after ``done`` seeds (``[]`` when the last look is reached)."""
        following = [n for n in self.looks if n > done]
        return list(range(done, following[0])) if following else []


# ---------------------------------------------------------------- one look
def restrict(e: Effect, seeds: int) -> Effect:
    """The effect recomputed on the first ``seeds`` seeds (``0 .. seeds-1``) of its samples."""
    a, b = e.samples
    if isinstance(a, dict) and isinstance(b, dict):
        a, b = ({s: v for s, v in x.items() if s < seeds} for x in (a, b))
    return effect(e.name, a, b, e.direction, e.margin)


def look_p(e: Effect) -> tuple[float, str]:
    """``(two-sided p, "for" | "against")`` of one look (rule in the module docstring); p = 1 without an interval."""
    if e.se is None or not math.isfinite(e.mean):
        return 1.0, FOR
    if e.direction == "~0":
        distance, side = abs(abs(e.mean) - e.margin), (FOR if abs(e.mean) < e.margin else AGAINST)
    else:
        distance, side = abs(e.mean), (FOR if (e.mean > 0) == (e.direction == ">0") else AGAINST)
    if e.se == 0:  # deterministic (the same for every seed): decided exactly unless on the boundary
        return (0.0 if distance > 0 else 1.0), side
    return min(1.0, 2.0 * (1.0 - t_cdf(distance / e.se, e.df))), side


def interval(e: Effect, level: float) -> tuple[float, float]:
    """Two-sided interval of ``e`` at error ``level`` (``(-inf, inf)`` without one)."""
    if e.se is None:
        return -math.inf, math.inf
    half = t_quantile(1.0 - level / 2.0, e.df) * e.se if e.se > 0 else 0.0
    return e.mean - half, e.mean + half


def detectable(e: Effect, level: float) -> float | None:
    """Smallest true effect (distance from 0, or from the margin for a similarity) this look would decide
    with 80 % power at two-sided error ``level``: ``(t_{1-level/2} + t_power) * se``."""
    if e.se is None:
        return None
    return (t_quantile(1.0 - level / 2.0, e.df) + t_quantile(POWER, e.df)) * e.se


# ---------------------------------------------------------------- a claim's effects over the looks
@dataclass
class Decided:
    """One effect after the sequential rule: its last look, how it was decided and at which n."""

    last: Effect  # the effect on every seed pooled
    outcome: str | None  # "for", "against" or None (undecided)
    p_seq: float  # min over looks of p_k / w_k
    p_holm: float  # Holm-adjusted over the claim's effects
    at: int  # seeds at the deciding look (the last look when undecided)
    level: float  # the error level of the shown interval (:func:`shown_level`)
    low: float = -math.inf
    high: float = math.inf
    mde: float | None = None  # undecided: the smallest detectable effect at the last look

    def text(self, digits: int = 3) -> str:
        e = self.last
        want = {">0": "> 0", "<0": "< 0"}.get(e.direction, f"within ±{e.margin:g}")
        lo_hi = f"[{self.low:.{digits}g}, {self.high:.{digits}g}]"
        if self.outcome is None:
            away = " away from the margin" if e.direction == "~0" else ""
            what = "undecided" + (f"; {self.at} seeds could detect {self.mde:.{digits}g}{away}" if self.mde is not None else "")
        else:
            what = ("supports" if self.outcome == FOR else "against") + f", decided at n={self.at}"
        return (f"{e.name} = {e.mean:.{digits}g}, {100 * (1 - self.level):.3g} % sequential CI {lo_hi} at n={self.at} "
                f"(p_Holm={self.p_holm:.2g}; claimed {want}: {what})")


def decide(effects: Sequence[Effect], schedule: Schedule) -> list[Decided]:
    """The sequential rule with Holm over ``effects`` (all of one claim, every setting), on the looks of
    ``schedule`` that the pooled seeds reach."""
    weights = dict(zip(schedule.looks, schedule.weights))
    out, per_look = [], []
    for e in effects:
        looks = look_ps(e, schedule)
        p, side, at = min(((p / weights[n], side, n) for n, p, side in looks), key=lambda x: x[0])
        out.append(Decided(e, side, min(1.0, p), 1.0, at, schedule.alpha))
        per_look.append(looks)
    m = len(out)
    for rank, (i, p_holm) in enumerate(holm([d.p_seq for d in out])):
        d, h = out[i], m - rank  # h: this effect's Holm divisor
        d.p_holm = p_holm
        if p_holm <= schedule.alpha:  # decided at the first look whose p clears its share of alpha
            d.at, d.outcome = next((n, side) for n, p, side in per_look[i] if p * h / weights[n] <= schedule.alpha)
        else:  # undecided: shown at the last look, with what it could have detected
            d.outcome, d.at = None, per_look[i][-1][0]
        at = restrict(d.last, d.at) if d.at < _seeds(d.last) else d.last
        d.level = shown_level(look_p(at)[0], p_holm, schedule.alpha * weights[d.at] / h, schedule.alpha)
        d.low, d.high = interval(at, d.level)
        if d.outcome is None:
            d.mde = detectable(at, d.level)
    return out


def shown_level(p: float, p_holm: float, share: float, alpha: float) -> float:
    """The error level of an effect's shown interval: ``alpha * p / p_holm``, the level at which this
    look's interval clears the boundary exactly when the Holm-adjusted ``p_holm <= alpha`` -- so the
    interval and the decision never disagree. (The look's share of alpha after Holm, ``share``, can:
    Holm's step-down stops at the first effect it cannot decide, and a later one that clears its own
    share stays undecided.) ``share`` where the ratio is undefined (a deterministic effect, p = 0)."""
    if p_holm <= 0 or p <= 0:
        return share
    return min(alpha, alpha * p / p_holm)


def look_ps(e: Effect, schedule: Schedule) -> list[tuple[int, float, str]]:
    """``(n, p, side)`` of every look of ``schedule`` that the effect's seeds reach (at least the first)."""
    seeds = _seeds(e)
    looks = [n for n in schedule.looks if n <= seeds] or [min(schedule.looks)]
    return [(n, *look_p(restrict(e, n) if n < seeds else e)) for n in looks]


def sequential_p(e: Effect, schedule: Schedule) -> float:
    """An effect's sequential p-value ``P = min_k p_k / w_k`` (valid over every look: see the module docstring)."""
    weights = dict(zip(schedule.looks, schedule.weights))
    return min(1.0, min(p / weights[n] for n, p, _ in look_ps(e, schedule)))


def holm(p: Sequence[float]) -> list[tuple[int, float]]:
    """Holm's step-down adjustment: ``(index, adjusted p)`` in ascending order of ``p`` (the i-th smallest
    is multiplied by ``m - i``; adjusted values never decrease)."""
    m, running, out = len(p), 0.0, []
    for rank, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out.append((i, running))
    return out


def _seeds(e: Effect) -> int:
    """How many seeds the effect's samples span (seeds are numbered from 0)."""
    a, b = e.samples
    if isinstance(a, dict) and isinstance(b, dict):
        common = set(a) & set(b)
        return max(common) + 1 if common else 0
    return e.n


@dataclass
class Verdict:
    word: str  # holds / does not hold / mixed / undecided
    n: int  # seeds pooled
    decided: list[Decided] = field(default_factory=list)

    @property
    def undecided(self) -> list[Decided]:
        return [d for d in self.decided if d.outcome is None]

    @property
    def complete(self) -> bool:
        """Every effect decided: no more seeds needed."""
        return not self.undecided

    @property
    def text(self) -> str:
        """``holds (n = 6)``; ``undecided at n = 9 (smallest detectable: 0.42, for <effect>)``."""
        if self.word != UNDECIDED:
            return f"{self.word} (n = {self.n})"
        d = next((d for d in self.undecided if d.mde is not None), None)
        return f"undecided at n = {self.n}" + (f" (smallest detectable: {d.mde:.3g}, {d.last.name})" if d else "")


def claim_verdict(decided: Sequence[Decided], n: int) -> Verdict:
    """The verdict word from the decided effects (rule in the module docstring)."""
    pro = any(d.outcome == FOR for d in decided)
    con = any(d.outcome == AGAINST for d in decided)
    if con:
        word = MIXED if pro else NOT
    elif decided and all(d.outcome == FOR for d in decided):
        word = HOLDS
    else:
        word = UNDECIDED
    return Verdict(word, n, list(decided))


def seeds_of(effects: Sequence[Effect]) -> int:
    """The seeds pooled: the most any effect spans."""
    return max((_seeds(e) for e in effects), default=0)


def sequential_verdict(effects: Sequence[Effect], schedule: Schedule) -> Verdict:
    return claim_verdict(decide(effects, schedule), seeds_of(effects))

