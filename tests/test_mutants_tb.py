"""TensorBoard writing (``skipbench.train.tb``) and its figures (``skipbench.train.figures``):
behaviour the mutation run showed no test pinned down. What is written is read back with
TensorBoard's own readers; the figures are checked through matplotlib's artists (their data, not
their looks).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from skipbench.figures import confusion_matrix, grad_flow_heatmap, grad_norm_by_depth
from skipbench.train.tb import HPARAM_METRICS, TBLogger, _uint8, captioned_grid, flatten, task_layout


def events(run_dir: Path) -> list:
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    files = sorted(run_dir.glob("events.out.tfevents*"))
    assert len(files) == 1
    return list(LegacyEventFileLoader(str(files[0])).Load())  # the events as written, no migration


# ---------------------------------------------------------------- figures
def test_heatmap_cells_are_log10_norms_layers_by_steps():
    # norms: one list per logged step (columns), one value per layer (rows)
    fig = grad_flow_heatmap(["enc", "dec", "head"], [10, 20, 40], [[1.0, 1e-3, 0.0], [10.0, 1e-2, 1e-4], [1e-1, 1e-5, 2.0]])
    ax = fig.axes[0]
    grid = np.ma.filled(ax.images[0].get_array().astype(float), np.nan)
    np.testing.assert_allclose(grid, [[0, 1, -1], [-3, -2, -5], [np.nan, -4, math.log10(2)]], atol=1e-12)
    assert list(ax.images[0].get_extent()) == [10, 40, 2.5, -0.5]  # x in steps, rows centred on their index
    assert [t.get_text() for t in ax.get_yticklabels()] == ["enc", "dec", "head"]
    single = grad_flow_heatmap(["a"], [5], [[1.0]])  # one step: no step axis to stretch over
    assert list(single.axes[0].images[0].get_extent()) == [-0.5, 0.5, 0.5, -0.5]


def test_grad_norm_by_depth_plots_norms_against_depth_on_a_log_axis():
    fig = grad_norm_by_depth(["a", "b", "c"], 30, [1.0, 0.1, 0.01])
    ax = fig.axes[0]
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [0, 1, 2] and list(line.get_ydata()) == [1.0, 0.1, 0.01]
    assert ax.get_yscale() == "log" and "30" in ax.get_title()


def test_confusion_matrix_rows_are_normalised_and_counts_written():
    counts = [[3, 1, 0], [0, 0, 0], [1, 1, 2]]
    fig = confusion_matrix(counts, ["a", "b", "c"])
    ax = fig.axes[0]
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), [[0.75, 0.25, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    assert ax.images[0].get_clim() == (0, 1)
    texts = {(t.get_position(), t.get_text()): t.get_color() for t in ax.texts}
    assert [(pos, text) for pos, text in texts] == [((j, i), str(counts[i][j])) for i in range(3) for j in range(3)]
    assert texts[((0, 0), "3")] == "white" and texts[((2, 2), "2")] == "black"  # 0.75 > 0.5; 0.5 is not
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    many = confusion_matrix([[1] * 21 for _ in range(21)], [str(i) for i in range(21)])
    assert len(many.axes[0].texts) == 0  # over 20 classes the numbers would not fit


# ---------------------------------------------------------------- pictures
def test_uint8_rounds_clamps_and_repeats_grey():
    grey = torch.tensor([[[[0.0, 0.5], [1.2, -0.1]]]])
    out = _uint8(grey)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, :, :, 0].tolist() == [[0, 128], [255, 0]] and (out[..., 0] == out[..., 2]).all()
    rgba = torch.stack([torch.full((1, 1), v) for v in (0.2, 0.4, 0.6, 0.8)])[None]  # 4 channels: the first 3
    assert _uint8(rgba).tolist() == [[[[51, 102, 153]]]]


def test_captioned_grid_enlarges_small_images_to_min_size():
    green = torch.zeros(2, 3, 5, 5)
    green[:, 1] = 1.0  # pure green: no caption pixel has that colour
    pic = captioned_grid([("x", green)], pad=3, min_size=12)  # 5 px -> x3 = 15 px, the smallest multiple >= 12
    assert pic.shape[0] == 3 + 15 + 3
    ys, xs = np.nonzero((pic == [0, 255, 0]).all(axis=2))
    assert len(ys) == 2 * 15 * 15 and (ys.min(), ys.max()) == (3, 17)
    assert pic[0, 0].tolist() == [255, 255, 255]  # on white
    labelled = captioned_grid([("x", green)], labels=["a", "b"], pad=3, min_size=12)
    below = labelled[3 + 15 + 3:]  # the strip under the images holds the column labels
    assert below.shape[0] > 5 and (below < 128).any()
    big = captioned_grid([("x", green.repeat(1, 1, 3, 3))], pad=3, min_size=12)  # 15 px: not enlarged
    assert big.shape[0] == 3 + 15 + 3 and (big == [0, 255, 0]).all(axis=2).sum() == 2 * 15 * 15


def test_flatten_keeps_hparam_types_and_stringifies_the_rest():
    flat = flatten({"a": {"b": {"c": 1.5}}, "s": "x", "i": 3, "t": True, "l": (1, 2), "n": None, "_x": 1})
    assert flat == {"a.b.c": 1.5, "s": "x", "i": 3, "t": True, "l": "(1, 2)"}


def test_task_layout_charts_match_their_own_tags_only():
    layout = task_layout("denoise", "mse", ["psnr", "ssim", "input_psnr"])
    (title, charts), = layout.items()
    assert "denoise" in title
    tags = ["loss/mse/train", "loss/mse/val", "loss/ce/train", "metric/val_psnr", "metric/best_val_psnr",
            "metric/val_input_psnr", "metric/val_ssim", "metric/best_val_ssim", "metric/val_ssim_x"]

    def matched(chart: str) -> list[str]:
        kind, regexes = charts[chart]
        assert kind == "Multiline"
        return [t for t in tags if any(re.search(rx, t) for rx in regexes)]

    assert set(charts) == {"loss (mse): train and val", "psnr (dB)", "ssim"}
    assert matched("loss (mse): train and val") == ["loss/mse/train", "loss/mse/val"]
    assert matched("psnr (dB)") == ["metric/val_psnr", "metric/best_val_psnr", "metric/val_input_psnr"]
    assert matched("ssim") == ["metric/val_ssim", "metric/best_val_ssim"]
    no_db = task_layout("classify", "ce", ["acc"])["classify: loss and metrics"]
    assert set(no_db) == {"loss (ce): train and val", "acc"}


# ---------------------------------------------------------------- the writer, read back
def test_scalars_images_figures_and_session_end_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    tb = TBLogger(tmp_path)
    tb.hparams({"model.name": "unet", "lr": 0.1})
    tb.scalars({"a": 1.0, "b": torch.tensor(2.5)}, 3)
    tb.scalars({}, 4)  # nothing to write: no event
    tb.images("samples", [("x", torch.zeros(1, 1, 4, 4))], 3, legend=[("disc", (1.0, 0.0, 0.0))])
    tb.figures({"fig": grad_norm_by_depth(["a", "b"], 3, [1.0, 0.1])}, 3)  # an object-API figure, no pyplot
    tb.layout({"c": {"t": ["Multiline", ["^a$"]]}})
    tb.close()
    ea = EventAccumulator(str(tmp_path))
    ea.Reload()
    assert [(e.step, e.value) for e in ea.Scalars("a")] == [(3, 1.0)] and ea.Scalars("b")[0].value == 2.5
    assert sorted(ea.Tags()["images"]) == ["fig", "samples"]
    import io

    from PIL import Image

    picture = np.asarray(Image.open(io.BytesIO(ea.Images("samples")[0].encoded_image_string)).convert("RGB"))
    assert (picture == [255, 0, 0]).all(axis=2).any()  # the legend's red swatch was drawn
    summaries = [v for e in events(tmp_path) if e.HasField("summary") for v in e.summary.value]
    steps_with_scalars = [e.step for e in events(tmp_path) if e.HasField("summary")
                          and any(v.HasField("simple_value") for v in e.summary.value)]
    assert steps_with_scalars == [3]  # both values in one event; the empty call wrote none
    hp = [HParamsPluginData.FromString(v.metadata.plugin_data.content) for v in summaries
          if v.metadata.plugin_data.plugin_name == "hparams"]
    kinds = [d.WhichOneof("data") for d in hp]
    assert kinds == ["experiment", "session_start_info", "session_end_info"]
    infos = hp[0].experiment.metric_infos
    assert [(i.name.tag, i.display_name, i.description) for i in infos] == HPARAM_METRICS
    assert dict(hp[1].session_start_info.hparams)["model.name"].string_value == "unet"
    assert any(v.metadata.plugin_data.plugin_name == "custom_scalars" for v in summaries)


def test_an_unfinished_run_has_no_session_end(tmp_path):
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    tb = TBLogger(tmp_path)
    tb.hparams({"x": 1})
    tb.close(finished=False)
    kinds = [HParamsPluginData.FromString(v.metadata.plugin_data.content).WhichOneof("data")
             for e in events(tmp_path) if e.HasField("summary") for v in e.summary.value
             if v.metadata.plugin_data.plugin_name == "hparams"]
    assert kinds == ["experiment", "session_start_info"]
