"""What TensorBoard itself shows for a log folder holding several variants and several tasks.

Tiny real runs (the training loop, in-process) go into one folder laid out like ``outputs/``; a real
``tensorboard`` server on loopback then answers what its dashboards would show: HParams sessions
with their metrics, the merged custom-scalars layout and every run's tags. Chart regexes are applied
the way TensorBoard's frontend applies them (a search, not a full match).

Then, in-process and without a server: what ``skipbench.train.tb`` writes, read back, and what the
figures of ``skipbench.figures`` show.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from skipbench.figures import confusion_matrix, grad_flow_heatmap, grad_norm_by_depth
from skipbench.models import MODELS
from skipbench.train.loop import train
from skipbench.train.tb import HPARAM_METRICS, TBLogger, _uint8, captioned_grid, flatten, task_layout

from conftest import MODEL_NAMES, TINY, compose, load_events

FAST = ["trainer.max_steps=2", "trainer.eval_every=2", "trainer.log_every=1", "model.depth=2", "diagnostics.images=false"]
TASKS = ["denoise", "reconstruct", "segment", "classify"]


def _runs(pairs: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(run folder, overrides) laid out as in ``outputs/``: a sweep per task, as the CLI names jobs."""
    return [(f"multirun/{task}_sweep/{i}_{task}_{model}",
             [f"task={task}", f"model={model}", *([] if MODELS[model].padding else ["dataset.size=64"])])
            for i, (task, model) in enumerate(pairs)]


# By default: three variants of a denoise sweep, and runs of the other tasks beside them.
RUNS = _runs([("denoise", "autoencoder"), ("denoise", "unet_concat"), ("denoise", "resnet"),
              ("classify", "highway"), ("segment", "densenet")])
# -m slow: every registered variant with every task.
ALL_RUNS = _runs([(t, m) for t in TASKS for m in MODEL_NAMES])


def _make(root: Path, runs) -> Path:
    for name, overrides in runs:
        (root / name).mkdir(parents=True)
        summary = train(compose([*TINY, *FAST, *overrides]), root / name)
        assert summary["status"] == "completed", name
    return root


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> Path:
    return _make(tmp_path_factory.mktemp("outputs"), RUNS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())


def _serve(logdir: Path, runs):
    """A real TensorBoard on a free loopback port, serving every run; stopped by its own pid."""
    exe = shutil.which("tensorboard") or str(Path(sys.executable).with_name("tensorboard"))
    port = _free_port()
    proc = subprocess.Popen([exe, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
                             "--load_fast=false", "--reload_interval=1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:  # TensorBoard loads lazily: wait until every run's scalars are there
            try:
                tags = _get(f"{base}/data/plugin/scalars/tags")
                if all(tags.get(n) for n, _ in runs):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tensorboard did not serve the runs: {proc.stderr.read()[-2000:] if proc.poll() is not None else 'timeout'}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(logdir):
    yield from _serve(logdir, RUNS)


SESSION_QUERY = {"experimentName": "", "allowedStatuses": ["STATUS_FAILURE", "STATUS_RUNNING", "STATUS_SUCCESS",
                 "STATUS_UNKNOWN"], "colParams": [], "startIndex": 0, "sliceSize": 1000}


@pytest.mark.long
def test_hparams_lists_every_run_with_its_headline_score(server, logdir):
    experiment = _get(f"{server}/data/plugin/hparams/experiment", {"experimentName": ""})
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    assert metrics[0] == "hparams/score"
    groups = _get(f"{server}/data/plugin/hparams/session_groups", SESSION_QUERY)["sessionGroups"]
    sessions = {s["name"]: s for g in groups for s in g["sessions"]}
    assert set(sessions) == {name for name, _ in RUNS}  # every run, whatever its task
    headline = {"classify": "acc", "segment": "miou"}
    for name, overrides in RUNS:
        task = next((o.split("=")[1] for o in overrides if o.startswith("task=")), "denoise")
        values = {m["name"]["tag"]: m["value"] for m in sessions[name]["metricValues"]}
        expected = load_events(logdir / name).Scalars(f"metric/val_{headline.get(task, 'psnr')}")[-1].value
        assert values["hparams/score"] == pytest.approx(expected, rel=1e-5), name
        # every declared metric in every session (a missing one drops the session from parallel
        # coordinates): the per-task columns are not declared, they stay in the scalars (issue 26)
        assert set(values) == set(metrics), name
    hparam_names = {h["name"] for h in experiment["hparamInfos"]}
    assert {"model.name", "params"} <= hparam_names


def _layouts(logdir: Path, runs) -> dict[str, dict]:
    """Each run's own custom-scalars layout: ``{run: {category: {chart: [regex, ...]}}}``."""
    from tensorboard.plugins.custom_scalar import layout_pb2

    from tensorboard.util.tensor_util import make_ndarray

    out = {}
    for name, _ in runs:
        ea = load_events(logdir / name)
        (tag,) = ea.PluginTagToContent("custom_scalars")  # the layout is the tensor of this one tag
        layout = layout_pb2.Layout.FromString(make_ndarray(ea.Tensors(tag)[0].tensor_proto).item())
        out[name] = {c.title: {ch.title: list(ch.multiline.tag) for ch in c.chart} for c in layout.category}
    return out


@pytest.mark.long
def test_every_custom_scalars_chart_matches_every_run_that_has_it(server, logdir):
    _check_layout(server, logdir, RUNS)


@pytest.mark.slow
def test_custom_scalars_fit_every_variant_and_task(tmp_path):
    root = _make(tmp_path, ALL_RUNS)
    for base in _serve(root, ALL_RUNS):
        _check_layout(base, root, ALL_RUNS)


def _check_layout(server: str, logdir: Path, runs) -> None:
    tags = _get(f"{server}/data/plugin/scalars/tags")  # {run: {tag: ...}} as the frontend sees them
    merged = _get(f"{server}/data/plugin/custom_scalars/layout")
    own = _layouts(logdir, runs)
    for category in merged["category"]:
        for chart in category["chart"]:
            regexes = chart["multiline"]["tag"]
            users = [run for run, layout in own.items() if chart["title"] in layout.get(category["title"], {})]
            assert users, (category["title"], chart["title"])
            for run in users:  # TensorBoard's frontend: new RegExp(r).test(tag), i.e. a search
                hits = [t for t in tags[run] if any(re.search(r, t) for r in regexes)]
                assert hits, f"{category['title']} / {chart['title']} {regexes}: no tag of {run}"
    # runs of one task write one layout, so the merged charts fit every variant of it
    for task in {run.split("/")[1].split("_")[0] for run in own}:
        layouts = [layout for run, layout in own.items() if f"_{task}_" in run]
        assert all(layout == layouts[0] for layout in layouts), task
        # the task's own category: its title names the task, so tasks never merge charts
        assert f"{task}: loss and metrics" in {c["title"] for c in merged["category"]}


@pytest.mark.long
def test_no_chart_mixes_units_or_tasks(server, logdir):
    tags = _get(f"{server}/data/plugin/scalars/tags")
    merged = _get(f"{server}/data/plugin/custom_scalars/layout")
    all_tags = {t for run in tags.values() for t in run}
    for category in merged["category"]:
        for chart in category["chart"]:
            hit = {t for t in all_tags if any(re.search(r, t) for r in chart["multiline"]["tag"])}
            kinds = {re.sub(r"^metric/(best_)?val_(input_)?", "", t) for t in hit if t.startswith("metric/")}
            assert len(kinds) <= 1, (chart["title"], sorted(hit))  # PSNR (dB) never beside SSIM
            losses = {t.split("/")[1] for t in hit if t.startswith("loss/")}
            assert len(losses) <= 1, (chart["title"], sorted(hit))  # CE never beside MSE
    # in Time Series every tag is its own card: the loss tags name the loss, so no card mixes them
    loss_tags = {t for t in all_tags if t.startswith("loss/")}
    assert loss_tags == {"loss/mse/train", "loss/mse/val", "loss/ce/train", "loss/ce/val"}
    assert "z_layer/grad_norm/05_head/conv" in tags[RUNS[0][0]] and "z_layer/grad_norm/05_head/linear" in tags[RUNS[3][0]]


@pytest.mark.long
def test_shared_layers_overlay_across_variants(server):
    """The Time Series card of a shared layer holds every variant's run: tags are stable."""
    tags = _get(f"{server}/data/plugin/scalars/tags")
    denoise = [n for n, _ in RUNS if "_denoise_" in n]
    shared = set.intersection(*(set(tags[r]) for r in denoise))
    for tag in ("z_layer/grad_norm/00_enc0/conv1", "z_layer/grad_norm/03_dec1/conv0_up", "z_layer/grad_norm/05_head/conv",
                "grad_level/00_enc0", "grad_level/02_bottleneck", "grad_level/05_head"):
        assert tag in shared, tag
    levels = sorted(t for t in shared if t.startswith("grad_level/"))
    assert len(levels) == 2 * 2 + 2  # depth 2: enc0, enc1, bottleneck, dec1, dec0, head


# ================================================================== found by mutation testing (round 2)
# Written from mutmut's survivors in issue 15m (docs/testing.md), formerly tests/test_mutants_tb.py:
# TensorBoard writing (``skipbench.train.tb``) and the figures (``skipbench.figures``), in-process. What
# is written is read back with TensorBoard's own readers; the figures are checked through matplotlib's
# artists (their data, not their looks).
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
    np.testing.assert_allclose(grid, [[0, 1, -1], [-3, -2, -5], [-20, -4, math.log10(2)]], atol=1e-12)  # 0: floor
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

    # one tag per chart: one line per run (issue 26)
    assert set(charts) == {"loss (mse): train", "loss (mse): val", "psnr (dB)", "input_psnr (dB)", "ssim"}
    assert matched("loss (mse): train") == ["loss/mse/train"] and matched("loss (mse): val") == ["loss/mse/val"]
    assert matched("psnr (dB)") == ["metric/val_psnr"] and matched("input_psnr (dB)") == ["metric/val_input_psnr"]
    assert matched("ssim") == ["metric/val_ssim"]
    no_db = task_layout("classify", "ce", ["acc"])["classify: loss and metrics"]
    assert set(no_db) == {"loss (ce): train", "loss (ce): val", "acc"}


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
