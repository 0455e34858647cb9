"""Issue 26 item 7: the report's numbers say what they are (bands for the n they have, the resolution of
steps to target, what steps/s and peak MB measure)."""

from types import SimpleNamespace as NS

from skipbench.report.plots import _band_text
from skipbench.report.render import _resolution


def _report(*ns, every=(25,)):
    groups = [NS(completed=[object()] * n) for n in ns]
    return NS(groups=groups, finished=[NS(config={"trainer.eval_every": e}) for e in every])


def test_a_band_is_named_by_the_runs_it_spans_and_absent_for_one_run():
    assert _band_text(_report(1, 1)) == "one run per group: no band"
    assert _band_text(_report(3, 3)) == "mean over seeds, band = min–max of n = 3 runs"
    assert _band_text(_report(1, 3)) == "mean over seeds, band = min–max of n = 1–3 runs; n = 1 groups: no band"


def test_steps_to_target_state_their_resolution():
    assert _resolution(_report(3, every=(25, 25))) == " (resolution: one evaluation every 25 steps, trainer.eval_every)"
    assert "10 / 50" in _resolution(_report(3, every=(50, 10)))
    assert _resolution(_report(3, every=())) == ""
