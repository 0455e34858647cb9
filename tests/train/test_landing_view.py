"""The custom-scalars landing view (issue 26 item 4): loss and metrics, then the per-level gradients,
then per-layer detail collapsed; no chart draws more than MAX_LINES lines of one run, and every
per-layer tag stays on some chart."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from skipbench.config import DiagnosticsConfig
from skipbench.models import build_model
from skipbench.run_folder import (ACT_MEAN, ACT_STD, BEST_SCORE, DEAD_LAYERS, GRAD_MAX, GRAD_NORM, GRAD_RATIO, GRAD_TOTAL,
                                  IMAGES_PER_S, LAYER_DETAIL, LR, MODEL_FLOPS, MODEL_PARAMS, SCORE, STEPS_PER_S,
                                  UPDATE_RATIO, WEIGHT_NORM, layer_of, layer_tags, loss_tag, metric_tag)
from skipbench.train.diagnostics import Diagnostics, detail_categories
from skipbench.train.tb import MAX_LINES, custom_scalars, task_layout


def _diag(model: str, **kw) -> Diagnostics:
    return Diagnostics(build_model(model, width=4, depth=2, **kw), OmegaConf.structured(DiagnosticsConfig))


def _tags(diag: Diagnostics) -> list[str]:
    """Every scalar tag such a run writes (as the loop does: grad norms, ratio, weights, updates, activations)."""
    blocks = [n for n, _ in diag.blocks]
    return [*diag.grad_norms.tags, GRAD_RATIO, DEAD_LAYERS, *layer_tags(diag.names, WEIGHT_NORM),
            *layer_tags(diag.names, UPDATE_RATIO), *layer_tags(blocks, ACT_MEAN), *layer_tags(blocks, ACT_STD)]


@pytest.mark.parametrize("model,kw", [("unet_concat", {}), ("resnet", {}), ("densenet", {"blocks_per_level": 3}),
                                      ("highway", {"blocks_per_level": 3})])
def test_no_chart_draws_more_than_max_lines_and_every_layer_is_charted(model, kw):
    diag = _diag(model, **kw)
    tags = _tags(diag)
    layout = diag.layout()
    charted = set()
    for category, charts in layout.items():
        for title, (_, regexes) in charts.items():
            hits = {t for t in tags if any(re.search(r, t) for r in regexes)}
            assert 1 <= len(hits) <= MAX_LINES, (category, title, sorted(hits))
            charted |= hits
    per_layer = [t for t in tags if t.startswith(LAYER_DETAIL + "/")]
    assert len(per_layer) > 4 * len(diag.names) and set(per_layer) <= charted  # detail stays available
    # a level with more layers than MAX_LINES was split, not dropped
    biggest = max(sum(n.startswith(level + "/") for n in diag.names) for level in {n.split("/")[0] for n in diag.names})
    if biggest > MAX_LINES:
        assert any(re.search(r"\(\d+/\d+\)$", t) for t in layout["per layer: gradient norm"])


def test_landing_order_and_collapsed_detail():
    from tensorboard.compat.proto.summary_pb2 import Summary  # noqa: F401
    from tensorboard.plugins.custom_scalar import layout_pb2

    diag = _diag("unet_concat")
    layout = {**task_layout("denoise", "mse", ["psnr", "ssim"]), **diag.layout()}
    summary = custom_scalars(layout, detail_categories(diag.layout()))
    proto = layout_pb2.Layout.FromString(summary.value[0].tensor.string_val[0])
    titles = [(c.title, c.closed) for c in proto.category]
    assert titles[0] == ("denoise: loss and metrics", False)
    assert titles[1] == ("gradient norm by level (log10)", False)
    assert titles[2] == ("vanishing gradients", False)
    assert titles[3:] and all(closed and t.startswith(("per layer", "per block")) for t, closed in titles[3:])
    # margin charts carry several series (the report's bands)
    margin = custom_scalars({"c": {"m": ["Margin", [("a/mean", "a/lower", "a/upper"), ("b/mean", "b/lower", "b/upper")]]}})
    chart = layout_pb2.Layout.FromString(margin.value[0].tensor.string_val[0]).category[0].chart[0]
    assert [(s.value, s.lower, s.upper) for s in chart.margin.series] == [("a/mean", "a/lower", "a/upper"),
                                                                          ("b/mean", "b/lower", "b/upper")]


def test_time_series_opens_on_the_story_and_per_layer_tags_sort_last():
    """TensorBoard's Time Series orders tag groups (the part before the first /) by name."""
    diag = _diag("resnet")
    story = [loss_tag("mse", "train"), loss_tag("mse", "val"), metric_tag("val_psnr"), SCORE, BEST_SCORE, LR,
             GRAD_TOTAL, GRAD_RATIO, STEPS_PER_S, IMAGES_PER_S, MODEL_PARAMS, MODEL_FLOPS,
             *[t for t in diag.grad_norms.tags if t.startswith("grad_level/")]]
    detail = [t for t in _tags(diag) + layer_tags(diag.names, GRAD_MAX) if t not in story and t != DEAD_LAYERS]
    assert detail and all(t.startswith(LAYER_DETAIL + "/") for t in detail), [t for t in detail if "/" not in t][:3]
    groups = sorted({t.split("/")[0] for t in story + detail})
    assert groups[-1] == LAYER_DETAIL and sorted(story + detail)[: len(story)] == sorted(story)
    # readers take the new tags and an older run's unprefixed ones alike
    assert layer_of(f"{LAYER_DETAIL}/{GRAD_NORM}/03_enc1/conv2", GRAD_NORM) == "03_enc1/conv2"
    assert layer_of(f"{GRAD_NORM}/03_enc1/conv2", GRAD_NORM) == "03_enc1/conv2"
    assert layer_of(f"{LAYER_DETAIL}/{WEIGHT_NORM}/03_enc1/conv2", GRAD_NORM) is None
    assert layer_of(GRAD_TOTAL, GRAD_NORM) is None
