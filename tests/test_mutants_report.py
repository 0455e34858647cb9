"""Report statistics and grouping (``skipbench.report.aggregate``): behaviour the mutation run showed
no test pinned down. Runs are built in memory (config, metrics.json content and scalar curves given
directly), every expected number is worked out by hand or taken from a printed t table.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from skipbench.report.aggregate import Group, build_report
from skipbench.report.curves import grad_norm_table, mean_curve
from skipbench.report.grouping import differing_keys, format_value, label_keys, resolve_key
from skipbench.report.stats import Summary, _betainc, t_cdf, t_quantile
from skipbench.report.values import (
    available_metrics, best_value, choose_metric, final_value, steps_to_target, train_seconds_at,
)
from skipbench.run_folder import metric_tag
from skipbench.report.runs import ReportError, Run


def run(name: str = "r", config: dict | None = None, metrics: dict | None = None, curves: dict | None = None) -> Run:
    return Run(path=Path("."), name=name, config=dict(config or {}), overrides=[], metrics=metrics,
               _scalars=dict(curves or {}))


# ---------------------------------------------------------------- Student t
@pytest.mark.parametrize("x", [0.0, 0.1, 0.37, 0.5, 0.9, 1.0])
def test_incomplete_beta_closed_forms(x):
    # I_x(1, 1) = x, I_x(2, 1) = x^2, I_x(1, 2) = 1 - (1 - x)^2, I_x(2, 2) = 3x^2 - 2x^3
    assert _betainc(1.0, 1.0, x) == pytest.approx(x, abs=1e-12)
    assert _betainc(2.0, 1.0, x) == pytest.approx(x**2, abs=1e-12)
    assert _betainc(1.0, 2.0, x) == pytest.approx(1 - (1 - x) ** 2, abs=1e-12)
    assert _betainc(2.0, 2.0, x) == pytest.approx(3 * x**2 - 2 * x**3, abs=1e-12)


def test_t_cdf_symmetry_and_cauchy():
    # df = 1 is the Cauchy distribution: CDF = 1/2 + atan(t) / pi
    for t in (-3.0, -0.5, 0.0, 0.5, 2.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-10)
    assert t_cdf(-2.571, 5) == pytest.approx(0.025, abs=1e-4)  # t table: 2.571 at 97.5 %, df 5
    assert t_cdf(2.0, 7) + t_cdf(-2.0, 7) == pytest.approx(1.0, abs=1e-12)


def test_t_quantile_below_one_and_its_bounds():
    # 75 % one-sided column of a t table: quantiles below 1 (the bisection starts on [0, 1])
    for df, t in {1: 1.000, 2: 0.816, 5: 0.727, 10: 0.700}.items():
        assert t_quantile(0.75, df) == pytest.approx(t, abs=6e-4), df
    assert t_quantile(0.5, 4) == pytest.approx(0.0, abs=1e-9)
    # df 1 is Cauchy: quantile tan(pi (p - 1/2)); the far tail needs many doublings of the bracket
    assert t_quantile(0.9995, 1) == pytest.approx(math.tan(math.pi * 0.4995), rel=1e-6)
    for p, df in ((0.0, 3), (1.0, 3), (0.5, 0), (-0.1, 3)):
        with pytest.raises(ValueError):
            t_quantile(p, df)


def test_summary_skips_missing_values_and_needs_two_for_a_std():
    s = Summary.of([1.0, None, math.nan, 3.0, math.inf])
    assert s.values == [1.0, 3.0] and s.n == 2
    assert (s.mean, s.std, s.ci95) == (2.0, pytest.approx(math.sqrt(2)), None)
    one = Summary.of([5])
    assert (one.mean, one.std, one.ci95) == (5.0, None, None)
    assert Summary.of([]).as_dict() == {"n": 0, "mean": None, "std": None, "ci95": None, "values": []}
    three = Summary.of([1.0, 2.0, 3.0]).as_dict()
    assert three["ci95"] == pytest.approx(4.303 * 1 / math.sqrt(3), rel=2e-4)  # std 1, t(0.975, 2) = 4.303


# ---------------------------------------------------------------- metrics of one run
def test_metric_tags_and_names():
    assert [metric_tag(m) for m in ("val_loss", "train_loss", "val_psnr")] == ["loss/val", "loss/train", "metric/val_psnr"]
    runs = [run(metrics={"final_val_psnr": 1, "best_val_psnr": 1, "steps": 3}), run(metrics=None),
            run(metrics={"final_train_loss": 1, "final_val_psnr": 2, "final_val_ssim": 3})]
    assert available_metrics(runs) == ["val_psnr", "train_loss", "val_ssim"]


def test_choose_metric_headline_and_fallbacks():
    seg = run(metrics={"final_val_loss": 1, "final_val_pixel_acc": 0.9, "final_val_miou": 0.5, "best_val_miou": 0.6})
    assert choose_metric([seg], None) == "val_miou"  # the one with a best_ value
    assert choose_metric([seg], "miou") == "val_miou" and choose_metric([seg], "val_loss") == "val_loss"
    no_best = run(metrics={"final_val_loss": 1, "final_train_loss": 1, "final_val_acc": 0.5})
    assert choose_metric([no_best], None) == "val_acc"  # the first val_ metric that is not a loss
    assert choose_metric([run(metrics={"final_train_loss": 1, "final_val_loss": 2})], None) == "val_loss"
    assert choose_metric([run(metrics={"final_train_loss": 1})], None) == "train_loss"
    assert choose_metric([run(metrics={"status": "failed"})], None) == "val_psnr"
    assert choose_metric([run(metrics={"status": "failed"})], "ssim") == "ssim"  # nothing to check it against
    with pytest.raises(ReportError, match="unknown metric 'iou'; known: val_loss, val_pixel_acc"):
        choose_metric([seg], "iou")


def test_final_and_best_values_from_metrics_or_curves():
    curve = {"metric/val_psnr": [(10, 3.0), (20, 5.0), (30, 4.0)], "loss/val": [(10, 0.5), (20, 0.2), (30, 0.3)]}
    done = run(metrics={"status": "completed", "final_val_psnr": 4.5, "best_val_psnr": 6.0}, curves=curve)
    assert final_value(done, "val_psnr") == 4.5 and best_value(done, "val_psnr") == 6.0
    bare = run(metrics={"status": "completed", "final_val_psnr": True}, curves=curve)  # a bool is no number
    assert final_value(bare, "val_psnr") == 4.0 and best_value(bare, "val_psnr") == 5.0
    assert best_value(bare, "val_loss") == 0.2  # a loss: the lowest is the best
    diverged = run(metrics={"status": "diverged", "final_val_psnr": math.nan}, curves=curve)
    assert final_value(diverged, "val_psnr") is None  # no curve fallback for a run that did not complete
    only_final = run(metrics={"status": "completed", "final_val_ssim": 0.7})
    assert best_value(only_final, "val_ssim") == 0.7
    assert final_value(run(metrics={"final_val_psnr": "high"}), "val_psnr") is None


def test_steps_and_seconds_to_target():
    curve = [(10, 1.0), (20, math.inf), (30, 3.0), (40, 2.0)]  # an infinite value reaches nothing
    assert steps_to_target(curve, 3.0) == 30 and steps_to_target(curve, 2.5) == 30
    assert steps_to_target(curve, 3.5) is None
    assert steps_to_target([(10, 0.5), (20, -math.inf), (30, 0.2)], 0.2, higher=False) == 30
    assert steps_to_target([(10, 0.5), (20, 0.3)], 0.4, higher=False) == 20
    timed = run(metrics={"train_time_s": 8.0, "steps": 40})
    assert train_seconds_at(timed, 30) == pytest.approx(6.0)
    # no totals: 10 steps at 5/s, then 10 at 2/s, then 10 at 10/s -> 2 + 5 + 0.5 (half a window)
    rates = run(metrics={"steps": 40}, curves={"perf/steps_per_s": [(10, 5.0), (20, 2.0), (30, 10.0)]})
    assert train_seconds_at(rates, 25) == pytest.approx(2 + 5 + 0.5)
    assert train_seconds_at(rates, 20) == pytest.approx(7.0)
    assert train_seconds_at(rates, 35) is None  # past the last logged rate
    bad = run(metrics={}, curves={"perf/steps_per_s": [(10, 5.0), (20, 0.0)]})
    assert train_seconds_at(bad, 20) is None
    assert train_seconds_at(run(metrics={"train_time_s": 8.0, "steps": 0}), 5) is None


# ---------------------------------------------------------------- grouping
def test_resolve_key_aliases_tails_and_ambiguity():
    known = ["model.name", "optimizer.lr", "scheduler.lr", "model.depth", "task"]
    assert resolve_key(" model ", known) == "model.name"
    assert resolve_key("depth", known) == "model.depth" and resolve_key("task", known) == "task"
    with pytest.raises(ReportError, match="did you mean optimizer.lr or scheduler.lr"):
        resolve_key("lr", known)
    with pytest.raises(ReportError) as ex:
        resolve_key("width", known)
    assert "did you mean" not in str(ex.value)


def test_differing_keys_order_and_missing_keys():
    runs = [run(config={"optimizer.lr": 0.1, "task": "denoise", "model.name": "a", "seed": 0, "extra": [1, 2]}),
            run(config={"optimizer.lr": 0.2, "task": "segment", "model.name": "b", "seed": 1, "extra": [1, 2]}),
            run(config={"optimizer.lr": 0.2, "task": "segment", "model.name": "b", "seed": 2, "extra": [1, 3],
                        "only.here": 1})]
    # model.name first, then undotted component names, then config order; lists compare as values
    assert differing_keys(runs) == ["model.name", "task", "extra", "optimizer.lr", "only.here"]
    assert label_keys(runs, ["model.name", "task", "optimizer.lr"]) == ["model.name"]  # the name tells them apart
    assert label_keys(runs, ["task", "extra"]) == ["task", "extra"]  # both needed


def test_labels_and_value_formatting():
    assert format_value((1, (2, None))) == "[1, [2, null]]" and format_value(None) == "null" and format_value(0.5) == "0.5"
    assert Group(key=(), labels={}, runs=[]).label == "all runs"
    g = Group(key=(), labels={"model.name": "resnet", "optimizer.betas": (0.9, 0.99)}, runs=[])
    assert g.label == "model=resnet, optimizer.betas=[0.9, 0.99]"
    g.steps_to_target, g.seconds_to_target = [10, None, 30], [1.0, None, 2.0]
    assert (g.reached, g.mean_steps_to_target, g.mean_seconds_to_target) == ([10, 30], 20, 1.5)
    g.steps_to_target, g.seconds_to_target = [None], [None]
    assert (g.mean_steps_to_target, g.mean_seconds_to_target) == (None, None)


def test_build_report_orders_by_the_metric_and_reports_statuses():
    cfg = lambda name, seed: {"model.name": name, "seed": seed}  # noqa: E731
    m = lambda v, **kw: {"status": "completed", "final_val_loss": v, "params": 10, "steps_per_s": 2.0, **kw}  # noqa: E731
    runs = [run("a0", cfg("a", 0), m(0.3)), run("a1", cfg("a", 1), m(0.5, params=20, steps_per_s=4.0)),
            run("b0", cfg("b", 0), m(0.2)), run("b1", cfg("b", 1), {"status": "diverged", "params": 10}),
            run("c0", cfg("c", 0), {"status": "failed"}), run("b2", cfg("b", 2), None),
            run("a2", cfg("a", 2), {"status": "interrupted"})]
    report = build_report(runs, metric="val_loss")
    assert [g.label for g in report.groups] == ["model=b", "model=a", "model=c"]  # lower loss first; no value last
    b, a, c = report.groups
    # params differ inside group a (10, 20): a structural number is never averaged (issue 26)
    assert (a.final.mean, a.params, a.steps_per_s) == (pytest.approx(0.4), None, 3.0)
    assert (b.failed, len(b.completed), c.failed, c.params) == (1, 1, 1, None)
    assert [r.name for r in report.incomplete] == ["b2"] and [r.name for r in report.interrupted] == ["a2"]
    assert [r.name for r in report.finished] == ["a0", "a1", "b0", "b1", "c0"]
    assert report.group_of(runs[3]) is b and report.group_of(runs[5]) is None
    assert report.target == pytest.approx(0.4) and report.target_source == "default"  # the worst group mean
    with pytest.raises(ReportError, match="2 run\\(s\\) found, none finished"):
        build_report(runs[5:])


def test_steps_to_target_skips_runs_without_a_curve():
    runs = [run("no_curve", {"model.name": "a", "seed": 0}, {"final_val_loss": 0.4}),
            run("curve", {"model.name": "a", "seed": 1}, {"final_val_loss": 0.3}, {"loss/val": [(10, 0.6), (20, 0.3)]})]
    (group,) = build_report(runs, metric="val_loss", target=0.5).groups
    assert group.steps_to_target == [20] and group.seconds_to_target == [None]  # no timing data: unknown


# ---------------------------------------------------------------- curves for the plots
def test_mean_curve_over_seeds():
    steps, mean, lo, hi = mean_curve([[(10, 1.0), (20, 3.0)], [(10, 3.0), (30, math.nan)], [(20, 5.0), (30, math.inf)]])
    assert steps.tolist() == [10, 20]  # step 30 has no finite value
    assert mean.tolist() == [2.0, 4.0] and lo.tolist() == [1.0, 3.0] and hi.tolist() == [3.0, 5.0]
    assert [a.size for a in mean_curve([[], []])] == [0, 0, 0, 0]


def test_grad_norm_table_is_the_mean_log10_norm():
    a = run(curves={"grad_norm/00_enc0/conv1": [(10, 100.0), (20, 10.0)], "grad_norm/01_head/conv": [(10, 0.0)],
                    "grad_level/00_enc0": [(10, 2.0)]})
    b = run(curves={"grad_norm/00_enc0/conv1": [(10, 1.0)], "grad_norm/01_head/conv": [(20, 1e-3)]})
    names, steps, table = grad_norm_table([a, b])
    assert names == ["00_enc0/conv1", "01_head/conv"] and steps.tolist() == [10, 20]
    # enc0 at 10: log10 100 = 2 and log10 1 = 0 -> 1; at 20: only a's 1. head at 10: a zero norm is no value
    np.testing.assert_allclose(table, [[1.0, 1.0], [np.nan, -3.0]])
    names, steps, table = grad_norm_table([a], levels=True)  # level tags are log10 already
    assert names == ["00_enc0"] and table.tolist() == [[2.0]]
    names, steps, table = grad_norm_table([b], names=["00_enc0/conv1", "99_missing"])  # rows fixed by the caller
    assert names == ["00_enc0/conv1", "99_missing"] and steps.tolist() == [10]
    assert table[0].tolist() == [0.0] and np.isnan(table[1]).all()
    assert grad_norm_table([run()])[0] == []
