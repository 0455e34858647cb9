"""Seed bands in the ``_report`` TensorBoard run (issue 23 item 4): per-group mean and Student-t 95 % CI
of each validation metric and per-level gradient norm by step, as custom-scalars margin charts."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from conftest import load_events

from skipbench.report.aggregate import build_report
from skipbench.report.plots import write_tensorboard
from skipbench.report.runs import Run
from skipbench.report.tb_bands import band_series

T_975_DF2 = 4.302652729911275  # Student t table, 97.5 %, 2 degrees of freedom
T_975_DF3 = 3.182446305284263


def _run(name: str, model: str, seed: int, psnr: list[tuple[int, float]], level: list[tuple[int, float]]) -> Run:
    curves = {"metric/val_psnr": psnr, "metric/best_val_psnr": psnr, "grad_level/03_bottleneck": level,
              "loss/mse/val": [(s, 1.0 / v) for s, v in psnr]}
    return Run(path=Path("."), name=name, config={"model.name": model, "seed": seed, "task": "denoise"}, overrides=[],
               metrics={"status": "completed", "final_val_psnr": psnr[-1][1]}, _scalars=curves)


def _runs() -> list[Run]:
    a = [([(0, 20.0), (10, 24.0)], [(10, -2.0)]), ([(0, 22.0), (10, 25.0)], [(10, -1.0)]),
         ([(0, 27.0), (10, 29.0)], [(10, -3.5)]), ([(10, 30.0)], [(10, -1.5)])]  # seed 3 has no step-0 eval
    b = [([(0, 10.0), (10, 11.0)], [(10, -4.0)]), ([(0, 12.0), (10, 13.0)], [(10, -5.0)])]  # n = 2: no band
    return ([_run(f"a{i}", "unet_concat", i, p, g) for i, (p, g) in enumerate(a)]
            + [_run(f"b{i}", "resnet", i, p, g) for i, (p, g) in enumerate(b)])


def _ci(values: list[float], t: float) -> tuple[float, float, float]:
    mean = statistics.mean(values)
    half = t * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def test_band_series_is_the_student_t_interval_by_step():
    rows = band_series([[(0, 20.0), (10, 24.0)], [(0, 22.0), (10, 25.0)], [(0, 27.0), (10, 29.0)], [(10, 30.0)]])
    assert [r[0] for r in rows] == [0, 10] and [r[4] for r in rows] == [3, 4]
    # step 0 by hand: mean 23, s = sqrt(13), half-width t(0.975, 2) * s / sqrt(3) = 8.9566
    assert rows[0][1:4] == pytest.approx((23.0, 23.0 - T_975_DF2 * math.sqrt(13) / math.sqrt(3),
                                          23.0 + T_975_DF2 * math.sqrt(13) / math.sqrt(3)), rel=1e-9)
    assert rows[1][1:4] == pytest.approx(_ci([24.0, 25.0, 29.0, 30.0], T_975_DF3), rel=1e-9)
    assert band_series([[(0, 1.0)], [(0, 2.0)]]) == []  # two seeds: no t interval
    assert band_series([[(0, 1.0)], [(0, math.nan)], [(0, 2.0)]]) == []  # a NaN is no value


def test_report_run_carries_margin_charts_of_each_group(tmp_path):
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.util.tensor_util import make_ndarray

    report = build_report(_runs(), metric="val_psnr")
    run = write_tensorboard(tmp_path, [], "summary", report)
    assert sorted(p.name for p in (run / "bands").iterdir()) == ["model=unet_concat"]  # n = 2 group: no band
    ea = load_events(run / "bands" / "model=unet_concat")  # one run per group: its own colour
    scalars = set(ea.Tags()["scalars"])
    value = {b: [(e.step, e.value) for e in ea.Scalars(f"report_band/val_psnr/{b}")] for b in ("mean", "lower", "upper")}
    m0, lo0, hi0 = _ci([20.0, 22.0, 27.0], T_975_DF2)
    m1, lo1, hi1 = _ci([24.0, 25.0, 29.0, 30.0], T_975_DF3)
    assert [s for s, _ in value["mean"]] == [0, 10]
    assert [v for _, v in value["mean"]] == pytest.approx([m0, m1], rel=1e-6)
    assert [v for _, v in value["lower"]] == pytest.approx([lo0, lo1], rel=1e-6)
    assert [v for _, v in value["upper"]] == pytest.approx([hi0, hi1], rel=1e-6)
    level = [e.value for e in ea.Scalars("report_band/grad_level/bottleneck/mean")]
    assert level == pytest.approx([statistics.mean([-2.0, -1.0, -3.5, -1.5])], rel=1e-6)
    assert "report_band/loss/mse/val/upper" in scalars
    assert not any("best_val" in t for t in scalars)  # validation metrics, not best-so-far
    main = load_events(run)
    assert "model=resnet: n = 2" in make_ndarray(main.Tensors("report/bands/text_summary")[0].tensor_proto).item().decode()

    (tag,) = main.PluginTagToContent("custom_scalars")
    layout = layout_pb2.Layout.FromString(make_ndarray(main.Tensors(tag)[0].tensor_proto).item())
    charts = {(c.title, ch.title): [(s.value, s.lower, s.upper) for s in ch.margin.series]
              for c in layout.category for ch in c.chart}
    metric_cat = "report: validation metrics, mean and 95 % CI over seeds"
    band = "report_band/val_psnr"
    assert charts[(metric_cat, "val_psnr (n = 4)")] == [(f"{band}/mean", f"{band}/lower", f"{band}/upper")]
    level_cat = "report: log10 gradient norm by level, mean and 95 % CI over seeds"
    assert (level_cat, "grad_level/bottleneck (n = 4)") in charts
    for series in charts.values():  # every series' tags were written
        assert all(t in scalars for s in series for t in s)
    write_tensorboard(tmp_path, [], "summary", build_report(_runs()[4:], metric="val_psnr"))
    assert not (run / "bands" / "model=unet_concat").exists()  # a report again replaces the bands
