"""The sequential rule (alpha spending over looks + Holm over a claim's effects) and the verdict words."""

from __future__ import annotations

import math
import random

import pytest

from skipbench import seeds
from skipbench.claims.sequential import (AGAINST, FOR, HOLDS, MIXED, NOT, UNDECIDED, Schedule, claim_verdict, decide,
                                         holm, interval, look_p, sequential_p, sequential_verdict)
from skipbench.claims.verdict import effect
from skipbench.errors import ConfigError

ZERO = {s: 0.0 for s in range(100)}


def _normal(rng: random.Random, n: int, mu: float = 0.0, sd: float = 1.0) -> dict[int, float]:
    return {s: rng.gauss(mu, sd) for s in range(n)}


# ---------------------------------------------------------------- the schedule
def test_looks_and_spending_weights_sum_to_one():
    s = Schedule(start=3, step=3, max_seeds=9)
    assert s.looks == [3, 6, 9] and s.next_seeds(3) == [3, 4, 5] and s.next_seeds(9) == []
    assert sum(s.weights) == pytest.approx(1.0) and all(w > 0 for w in s.weights)
    assert s.weights[0] == pytest.approx(math.log1p((math.e - 1) / 3))  # Pocock-type spending
    of = Schedule(start=3, step=3, max_seeds=9, spending="obrien_fleming").weights
    assert sum(of) == pytest.approx(1.0) and of[0] < 0.02 < of[-1]  # O'Brien-Fleming saves alpha for the end
    assert Schedule(start=3, step=4, max_seeds=9).looks == [3, 7, 9]


@pytest.mark.parametrize("kw, bad", [({"start": 1}, "seeds.start=1"), ({"max_seeds": 2}, "seeds.max=2"),
                                     ({"alpha": 1.5}, "alpha=1.5"), ({"spending": "bogus"}, "spending='bogus'")])
def test_bad_schedule_is_one_line_config_error(kw, bad):
    with pytest.raises(ConfigError, match=bad):
        Schedule(**kw)


# ---------------------------------------------------------------- false positives under the null
def _null_family_error(schedule: Schedule, effects: int, trials: int, skip_holm: bool = False) -> float:
    """Share of simulated claims, every effect truly 0, in which any effect is decided (either way)."""
    wrong = 0
    for k in range(trials):
        rng = random.Random(seeds.derive(0, "stats_simulation", k))
        ps = [sequential_p(effect("e", ZERO, _normal(rng, schedule.max_seeds), ">0"), schedule) for _ in range(effects)]
        adjusted = [p for _, p in holm(ps)] if not skip_holm else ps
        wrong += any(p <= schedule.alpha for p in adjusted)
    return wrong / trials


@pytest.mark.parametrize("spending", ["pocock", "obrien_fleming"])
def test_false_positive_rate_on_null_effects_stays_at_or_below_alpha(spending):
    schedule = Schedule(start=3, step=3, max_seeds=9, alpha=0.1, spending=spending)
    rate = _null_family_error(schedule, effects=3, trials=600)
    # nominal 0.1; binomial sd at 600 trials ~ 0.012: 0.125 is two sd above the nominal level
    assert rate <= 0.125, rate


def test_the_same_simulation_catches_looking_without_spending(monkeypatch):
    """Planted bug: every look at the full alpha (no spending) pushes the rate well above alpha."""
    monkeypatch.setattr(Schedule, "weights", property(lambda self: [1.0] * len(self.looks)))
    assert _null_family_error(Schedule(start=3, step=3, max_seeds=9, alpha=0.1), effects=1, trials=400) > 0.15


def test_the_same_simulation_catches_holm_skipped():
    """Planted bug: Holm skipped, three null effects at alpha each: the family's rate is about 3 alpha."""
    one = Schedule(start=9, step=3, max_seeds=9, alpha=0.1)  # one look: exact t tests
    assert _null_family_error(one, effects=3, trials=400, skip_holm=True) > 0.2


def test_a_single_null_effect_is_decided_at_about_the_nominal_rate_when_looked_at_once():
    """One look, one effect: the t test is exact, so the rate is close to alpha (not just below it)."""
    rate = _null_family_error(Schedule(start=6, step=3, max_seeds=6, alpha=0.1), effects=1, trials=600)
    assert 0.07 <= rate <= 0.13, rate


# ---------------------------------------------------------------- one look
def test_look_p_and_interval_by_hand():
    e = effect("b - a", {0: 0.0, 1: 0.0, 2: 0.0}, {0: 1.0, 1: 2.0, 2: 3.0}, ">0")  # mean 2, se 1/sqrt(3)
    p, side = look_p(e)
    t = 2 * math.sqrt(3)  # on 2 df the t CDF is 1/2 + t / (2 sqrt(2 + t^2))
    assert side == FOR and p == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)
    low, high = interval(e, 0.05)
    assert (low, high) == pytest.approx((2 - 4.302653 / math.sqrt(3), 2 + 4.302653 / math.sqrt(3)), rel=1e-5)
    assert look_p(effect("x", ZERO, {0: 1.0, 1: 2.0, 2: 3.0}, "<0"))[1] == AGAINST


def test_similarity_p_is_the_distance_from_the_margin():
    inside = effect("x", ZERO, {0: 0.1, 1: -0.1, 2: 0.0}, "~0", margin=0.5)
    outside = effect("x", ZERO, {0: 2.1, 1: 1.9, 2: 2.0}, "~0", margin=0.5)
    assert look_p(inside)[1] == FOR and look_p(outside)[1] == AGAINST
    # the (1 - p) interval touches the margin exactly
    p_in, p_out = look_p(inside)[0], look_p(outside)[0]
    assert interval(inside, p_in)[1] == pytest.approx(0.5, rel=1e-6)
    assert interval(outside, p_out)[0] == pytest.approx(0.5, rel=1e-6)


# ---------------------------------------------------------------- each verdict word on constructed data
def _strong(sign: float, n: int = 3) -> dict[int, float]:
    return {s: sign * (5.0 + 0.1 * s) for s in range(n)}


def test_holds_when_every_effect_is_decided_for_and_the_interval_is_on_the_claimed_side():
    v = sequential_verdict([effect("up", ZERO, _strong(1), ">0"), effect("down", ZERO, _strong(-1), "<0")], Schedule())
    assert v.word == HOLDS and v.n == 3 and v.text == "holds (n = 3)"
    up, down = v.decided
    assert up.outcome == FOR and up.at == 3 and 0 < up.low < up.last.mean < up.high
    assert down.outcome == FOR and down.low < down.last.mean < down.high < 0


def test_does_not_hold_when_an_effect_is_against_or_the_similarity_excluded():
    v = sequential_verdict([effect("up", ZERO, _strong(-1), ">0")], Schedule())
    assert v.word == NOT and v.decided[0].outcome == AGAINST and v.decided[0].high < 0
    far = {s: 3.0 + 0.05 * s for s in range(3)}
    v = sequential_verdict([effect("similar", ZERO, far, "~0", margin=0.5)], Schedule())
    assert v.word == NOT and v.decided[0].low > 0.5 and v.text == "does not hold (n = 3)"


def test_mixed_when_some_effects_hold_and_others_are_against():
    v = sequential_verdict([effect("a", ZERO, _strong(1), ">0"), effect("b", ZERO, _strong(1), "<0")], Schedule())
    assert v.word == MIXED and [d.outcome for d in v.decided] == [FOR, AGAINST]


def test_undecided_names_its_n_and_the_smallest_detectable_effect():
    rng = random.Random(seeds.derive(1, "stats_simulation", 0))
    noisy = _normal(rng, 9, mu=0.1, sd=1.0)
    v = sequential_verdict([effect("sure", ZERO, _strong(1, 9), ">0"), effect("noisy", ZERO, noisy, ">0")], Schedule())
    assert v.word == UNDECIDED and not v.complete
    d = v.undecided[0]
    assert d.last.name == "noisy" and d.at == 9 and d.mde is not None and d.mde > abs(d.last.mean)
    assert v.text == f"undecided at n = 9 (smallest detectable: {d.mde:.3g}, noisy)"
    # the detectable effect shrinks like 1/sqrt(n): four times the seeds, about half of it
    more = sequential_verdict([effect("noisy", ZERO, _normal(random.Random(2), 36, 0.0, 1.0), ">0")],
                              Schedule(start=9, step=9, max_seeds=36))
    assert more.undecided and more.undecided[0].mde < 0.75 * d.mde


def test_holm_is_applied_across_a_claims_effects():
    """Two effects each with p 0.04: alone each is decided, together Holm needs 0.025 for the first."""
    one = Schedule(start=5, step=1, max_seeds=5)  # one look: P is the t test's p
    base = [-1.0, -0.5, 0.0, 0.5, 1.0]  # sd 0.7906, se 0.35355
    shift = 3.0 * 0.35355  # t = 3.0 on 4 df: p = 0.040
    e = effect("e", {s: 0.0 for s in range(5)}, {s: v + shift for s, v in enumerate(base)}, ">0")
    p = look_p(e)[0]
    assert 0.025 < p < 0.05
    assert decide([e], one)[0].outcome == FOR
    pair = decide([e, e], one)
    assert [d.outcome for d in pair] == [None, None] and all(d.p_holm == pytest.approx(min(1, 2 * p)) for d in pair)
    assert [p for _, p in holm([0.01, 0.04, 0.03])] == pytest.approx([0.03, 0.06, 0.06])


def test_an_effect_decided_early_says_at_which_n():
    big = {s: 5.0 + 0.1 * (s % 3) for s in range(9)}
    d = decide([effect("big", ZERO, big, ">0")], Schedule())[0]
    assert d.outcome == FOR and d.at == 3  # Pocock spending: a large effect stops at the first look


def test_verdict_words_do_not_depend_on_effect_order():
    es = [effect("a", ZERO, _strong(1), ">0"), effect("b", ZERO, _strong(1), "<0")]
    assert claim_verdict(decide(es, Schedule()), 3).word == claim_verdict(decide(es[::-1], Schedule()), 3).word == MIXED


def test_the_shown_interval_clears_the_boundary_exactly_when_the_effect_is_decided():
    """Holm's step-down can leave undecided an effect that clears its own share of alpha (the smaller p
    before it did not clear its larger divisor): its interval must not exclude 0 then. Seed 12 draws
    such a pair: sequential p 0.0324 (x 2 = 0.065, not decided) and 0.0494 (x 1 = 0.049, stopped)."""
    import random

    from skipbench.claims.sequential import Schedule, decide
    from skipbench.claims.verdict import effect

    rng = random.Random(12)
    effects = [effect(f"e{j}", {s: 0.0 for s in range(9)}, {s: rng.gauss(1.0, 1.0) for s in range(9)}, ">0")
               for j in range(2)]
    decided = decide(effects, Schedule(start=3, step=3, max_seeds=9))
    assert sorted(round(d.p_seq, 4) for d in decided) == [0.0324, 0.0494]
    for d in decided:
        assert d.outcome is None and d.p_holm > 0.05
        assert d.low <= 0 <= d.high, d.text()  # the interval agrees with "undecided"
    # and on random draws, decided or not, the two never disagree
    rng = random.Random(7)
    for _ in range(200):
        effects = [effect(f"e{j}", {s: 0.0 for s in range(9)}, {s: rng.gauss(0.6 * j, 1.0) for s in range(9)}, ">0")
                   for j in range(3)]
        for d in decide(effects, Schedule(start=3, step=3, max_seeds=9)):
            assert (d.low > 0 or d.high < 0) == (d.outcome is not None), d.text()
