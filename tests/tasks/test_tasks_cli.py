"""Every task through the real CLI, on shapes and on small files in the official formats."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import SWEEP_MODELS, SWEEP_TASKS, describe, job_dir, load_events, read_metrics, run_cli, run_main
from official_formats import cifar_files, fake_mnist, image_tree, write_cifar, write_idx_set

SHORT = ["trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2"]
HEADLINE = {"reconstruct": "psnr", "denoise": "psnr", "segment": "miou", "classify": "acc"}


@pytest.mark.long
@pytest.mark.parametrize("model", SWEEP_MODELS)
@pytest.mark.parametrize("task", list(HEADLINE))
def test_every_task_runs_on_shapes(tiny_sweep, task, model):
    sweep, res = tiny_sweep
    assert res.returncode == 0, describe(res)
    run_dir = job_dir(sweep, f"task={task}", f"model={model}")
    m = read_metrics(run_dir)
    metric = HEADLINE[task]
    assert m["status"] == "completed" and m["task"] == task
    assert math.isfinite(m[f"final_val_{metric}"]) and m[f"best_val_{metric}"] is not None
    assert 0 <= m["data_time_fraction"] < 1
    ea = load_events(run_dir)
    assert f"metric/val_{metric}" in ea.Tags()["scalars"]
    images = set(ea.Tags()["images"])
    assert "samples/val" in images
    if task == "classify":
        assert "confusion/val" in images
    if task == "denoise":
        assert m["final_val_input_psnr"] < 20  # sigma 0.2 noise: ~14-17 dB, the baseline to beat
    if task == "segment":
        assert {"final_val_dice", "final_val_pixel_acc"} <= set(m)


@pytest.mark.long
def test_classify_with_a_long_skip_only_variant_says_so(tiny_sweep):
    sweep, res = tiny_sweep
    assert "unet_concat" in SWEEP_MODELS and "classify" in SWEEP_TASKS
    assert "trains the same network as model=plain" in res.stdout + res.stderr


def _official_mnist(root: Path) -> None:
    arrays = fake_mnist(n_train=40, n_test=12)
    write_idx_set(root, arrays, gz={"train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})


@pytest.mark.parametrize("setup,args", [
    ("mnist", ["dataset=mnist", "task=segment", "dataset.size=32"]),
    ("cifar10", ["dataset=cifar10", "task=classify", "model=resnet"]),
    ("folder", ["dataset=folder", "task=denoise", "dataset.crop=32", "task.sigma=0.2"]),
])
@pytest.mark.long
def test_real_formats_through_the_cli(tmp_path, setup, args):
    root = tmp_path / "data"
    if setup == "mnist":
        _official_mnist(root)
    elif setup == "cifar10":
        write_cifar(root, cifar_files(per_batch=8, n_test=8))
    else:
        root = image_tree(tmp_path, n_per_class=4, with_masks=False)
    run_dir = tmp_path / "run"
    res = run_cli(["train", *args, f"dataset.root={root}", "model.width=4", "trainer.batch_size=4",
                   "trainer.progress=false", *SHORT, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    m = read_metrics(run_dir)
    assert m["status"] == "completed" and m["dataset"] == setup


def test_segment_on_a_data_set_without_masks_is_one_line(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    write_cifar(root, cifar_files(per_batch=4, n_test=4))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["train", "dataset=cifar10", "task=segment", f"dataset.root={root}", "model.width=4",
                               "trainer.batch_size=4", "trainer.progress=false"], capsys)
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("skipbench train: error: task=segment: dataset=cifar10 has no per-pixel masks")
    assert "classify" in lines[-1] and "Traceback" not in err
