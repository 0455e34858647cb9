"""Figures on comparable axes (issue 26 item 5): a run's heat map and by-depth plot use its task's fixed
range, the by-depth x axis lines variants up level by level, zero gradients are not "not logged"."""

from __future__ import annotations

import numpy as np
import pytest

from skipbench.figures import (GRAD_LOG10_RANGE, GRAD_LOG10_RANGES, MISSING, UNDER, depth_positions, grad_flow_heatmap,
                               grad_norm_by_depth, grad_range)

PLAIN = ["00_enc0/conv1", "00_enc0/conv2", "01_bottleneck/conv1", "02_head/conv"]
RESNET = ["00_enc0/conv1", "00_enc0/conv2", "00_enc0/conv2.shortcut", "01_bottleneck/conv1", "02_head/conv"]


@pytest.mark.parametrize("task", sorted(GRAD_LOG10_RANGES))
def test_every_run_of_a_task_draws_on_the_same_range(task):
    lo, hi = grad_range(task)
    a = grad_flow_heatmap(PLAIN, [1, 2], [[1e-3, 1e-2, 1e-1, 1.0], [1e-4, 1e-3, 1e-2, 1e-1]], task)
    b = grad_flow_heatmap(RESNET, [1, 2], [[1e-1] * 5, [1e-2] * 5], task)  # another variant, other data
    assert a.axes[0].images[0].get_clim() == b.axes[0].images[0].get_clim() == (lo, hi)
    assert f"[{lo:g}, {hi:g}] for every {task} run" in a.axes[1].get_ylabel()
    x = grad_norm_by_depth(PLAIN, 5, [1e-3, 1e-2, 1e-1, 1.0], task).axes[0]
    y = grad_norm_by_depth(RESNET, 5, [1e-1, 1e-1, 1e-6, 1e-1, 1e-1], task).axes[0]
    assert x.get_ylim() == y.get_ylim() == pytest.approx((10.0 ** lo, 10.0 ** hi))
    assert x.get_xlim() == y.get_xlim()
    assert [t.get_text() for t in y.get_xticklabels()] == ["enc0", "bottleneck", "head"]


def test_the_ranges_are_narrower_than_the_catch_all_and_unknown_tasks_keep_it():
    assert grad_range("my_task") == grad_range(None) == GRAD_LOG10_RANGE
    for lo, hi in GRAD_LOG10_RANGES.values():
        assert lo < hi and hi - lo < GRAD_LOG10_RANGE[1] - GRAD_LOG10_RANGE[0]  # more shades for the data


def test_by_depth_positions_line_variants_up_level_by_level():
    plain, ticks = depth_positions(PLAIN)
    resnet, _ = depth_positions(RESNET)
    assert plain == [0.0, 0.5, 1.0, 2.0]
    assert resnet == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0, 2.0])  # the shortcut shifts nothing after its level
    assert ticks == [(0.0, "enc0"), (1.0, "bottleneck"), (2.0, "head")]
    ax = grad_norm_by_depth(RESNET, 5, [1.0, 0.1, 1e-9, 0.01, 0.1], "denoise").axes[0]
    assert list(ax.get_lines()[0].get_xdata()) == pytest.approx(resnet)
    assert len(ax.get_lines()) == 2  # 1e-9 is below denoise's range: marked on the edge


def test_zero_gradient_is_the_under_colour_and_not_logged_is_quiet():
    import matplotlib.colors as mcolors

    fig = grad_flow_heatmap(["a", "b"], [1, 2], [[0.0, 1e-2], [float("nan"), 1e-2]], "denoise")
    image = fig.axes[0].images[0]
    rgba = image.to_rgba(image.get_array())
    assert mcolors.to_hex(rgba[0, 0]) == UNDER  # exactly zero: vanished, not a gap
    assert mcolors.to_hex(rgba[0, 1]) == MISSING  # NaN: not logged, light grey
    grey = np.asarray(mcolors.to_rgb(MISSING))
    assert grey.min() > 0.75 and np.ptp(grey) < 0.05  # a pale neutral, not white, not a data colour
