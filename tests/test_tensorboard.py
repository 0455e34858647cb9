"""What TensorBoard itself shows for a log folder holding several variants and several tasks.

Tiny real runs (the training loop, in-process) go into one folder laid out like ``outputs/``; a real
``tensorboard`` server on loopback then answers what its dashboards would show: HParams sessions
with their metrics, the merged custom-scalars layout and every run's tags. Chart regexes are applied
the way TensorBoard's frontend applies them (a search, not a full match).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from skipbench.models import MODELS
from skipbench.train.loop import train

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
        assert f"metric/val_{headline.get(task, 'psnr')}" in values, name  # its own task's column too
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
    assert "grad_norm/05_head/conv" in tags[RUNS[0][0]] and "grad_norm/05_head/linear" in tags[RUNS[3][0]]


def test_shared_layers_overlay_across_variants(server):
    """The Time Series card of a shared layer holds every variant's run: tags are stable."""
    tags = _get(f"{server}/data/plugin/scalars/tags")
    denoise = [n for n, _ in RUNS if "_denoise_" in n]
    shared = set.intersection(*(set(tags[r]) for r in denoise))
    for tag in ("grad_norm/00_enc0/conv1", "grad_norm/03_dec1/conv0_up", "grad_norm/05_head/conv",
                "grad_level/00_enc0", "grad_level/02_bottleneck", "grad_level/05_head"):
        assert tag in shared, tag
    levels = sorted(t for t in shared if t.startswith("grad_level/"))
    assert len(levels) == 2 * 2 + 2  # depth 2: enc0, enc1, bottleneck, dec1, dec0, head
