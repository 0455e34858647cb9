"""Training pieces: schedules, gradient norms, checkpoints, TensorBoard helpers, the loop in-process;
the loop's helpers called directly (evaluation, logging, the summary, run info, threads, the stop flag)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from skipbench.run_folder import LAYER_DETAIL
from skipbench import seeds
from skipbench.commands.job import launcher_threads
from skipbench.models import MODELS
from skipbench.run_folder import atomic_write, write_json
from skipbench.train.checkpoint import CHECKPOINT, find_checkpoint, load_checkpoint, save_checkpoint
from skipbench.train.context import RunContext
from skipbench.train.diagnostics import Diagnostics, GradNorms, layer_tags, skeleton_layers
from skipbench.train.loop import StopFlag, build, eval_and_log, evaluate, finish, run_info, train
from skipbench.train.schedule import constant, warmup_cosine
from skipbench.train.tb import TBLogger, captioned_grid, flatten

from conftest import MODEL_NAMES, TINY, compose, event_files, load_events, read_metrics, tiny_model


# ------------------------------------------------------------------ schedules
def _lrs(factory, steps: int, base_lr: float = 0.1, **kw) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    sched = factory(opt, total_steps=steps, **kw)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs  # lrs[s] = lr used by optimizer step s+1; lrs[steps] = after the last step


@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1])
def test_warmup_cosine(min_lr_ratio):
    base, warmup, total = 0.1, 10, 50
    lrs = _lrs(warmup_cosine, total, base, warmup_steps=warmup, min_lr_ratio=min_lr_ratio)
    # linear rise during warmup, reaching the base lr at its end
    warm = lrs[:warmup]
    steps = [b - a for a, b in zip(warm, warm[1:])]
    assert all(d > 0 for d in steps)
    assert max(steps) - min(steps) < 1e-9
    assert warm[0] == pytest.approx(base / warmup)
    assert lrs[warmup] == pytest.approx(base)
    # then never rising, and ending at lr * min_lr_ratio
    after = lrs[warmup:]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:]))
    assert lrs[total] == pytest.approx(base * min_lr_ratio, abs=1e-12)
    assert min(lrs) >= base * min_lr_ratio - 1e-12
    # halfway through the decay the cosine is at its midpoint
    mid = warmup + (total - warmup) // 2
    assert lrs[mid] == pytest.approx(base * (min_lr_ratio + (1 - min_lr_ratio) * 0.5))


def test_warmup_cosine_without_warmup_starts_at_base():
    lrs = _lrs(warmup_cosine, 20, 0.1, warmup_steps=0)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[20] == pytest.approx(0.0, abs=1e-12)


def test_constant_schedule():
    assert set(_lrs(constant, 10, 0.3)) == {0.3}


# ------------------------------------------------------------------ gradient norms
def _backward(model, size=16):
    torch.manual_seed(0)
    model.train()
    x = torch.rand(2, 1, size, size)
    (model(x) * torch.randn(2, 1, size, size)).sum().backward()


@pytest.mark.parametrize("name", ["unet_add", "highway", "fc_densenet"])
def test_grad_norms_match_direct_computation(name):
    model = tiny_model(name, depth=2)
    _backward(model)
    gn = GradNorms(model)
    values = gn()
    layers, _ = skeleton_layers(model)
    n, levels = len(layers), len(gn.level_names)
    assert values.shape == (n + 1 + levels,)
    assert len(gn.tags) == n + 1 + levels
    for (lname, layer), v, tag in zip(layers, values[:n], gn.tags):
        expected = torch.linalg.vector_norm(layer.weight.grad)
        torch.testing.assert_close(v, expected, rtol=1e-5, atol=1e-7, msg=f"{name}: {lname}")
        assert tag == f"z_layer/grad_norm/{lname}"
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(values[n], torch.linalg.vector_norm(grads), rtol=1e-5, atol=1e-7)
    assert gn.tags[n] == "grad_norm/total"
    assert (values[: n + 1] > 0).all()


def test_grad_norms_count_missing_grads_as_zero():
    model = tiny_model("autoencoder", depth=1)
    gn = GradNorms(model)
    values = gn()  # no backward yet: every grad is None
    n = len(gn.names) + 1
    assert torch.equal(values[:n], torch.zeros(n))
    assert torch.all(values[n:] == math.log10(1e-20))  # levels: log10 of the floor, never -inf


def test_grad_norm_tags_sort_by_depth_and_are_named():
    model = tiny_model("unet_concat", depth=3)
    gn = GradNorms(model)
    layer_part = gn.tags[: len(gn.names)]
    assert layer_part == layer_tags([n for n, _ in skeleton_layers(model)[0]], "grad_norm")
    assert layer_part[0] == "z_layer/grad_norm/00_enc0/conv1"
    assert layer_part[-1] == "z_layer/grad_norm/07_head/conv"
    assert "z_layer/grad_norm/04_dec2/conv0_up" in layer_part  # the level's upsampling conv comes first
    assert sorted(layer_part) == layer_part


# ------------------------------------------------------------------ checkpoints
def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "file.txt"
    atomic_write(target, lambda tmp: Path(tmp).write_text("hello"))
    assert target.read_text() == "hello"
    assert _leftovers(tmp_path, {"file.txt"}) == []
    mode = target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_atomic_write_keeps_previous_file(tmp_path, exc):
    target = tmp_path / "file.txt"
    target.write_text("old")

    def write(tmp):
        Path(tmp).write_text("new but torn")
        raise exc("boom")

    with pytest.raises(exc):
        atomic_write(target, write)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path, {"file.txt"}) == []


def test_checkpoint_round_trip(tmp_path):
    state = {"step": 3, "model": {"w": torch.arange(4.0)}, "config": {"a": [1, 2]}}
    save_checkpoint(tmp_path / CHECKPOINT, state)
    loaded = load_checkpoint(find_checkpoint(str(tmp_path)))
    assert loaded["step"] == 3 and loaded["config"] == {"a": [1, 2]}
    assert torch.equal(loaded["model"]["w"], torch.arange(4.0))
    assert find_checkpoint(str(tmp_path / CHECKPOINT)) == tmp_path / CHECKPOINT
    assert _leftovers(tmp_path, {CHECKPOINT}) == []


def test_find_checkpoint_missing(tmp_path):
    from skipbench.config import ConfigError

    with pytest.raises(ConfigError, match="resume="):
        find_checkpoint(str(tmp_path))
    with pytest.raises(ConfigError):
        find_checkpoint(str(tmp_path / "nope" / CHECKPOINT))


def test_write_json(tmp_path):
    import json

    write_json(tmp_path / "m.json", {"a": 1.5, "b": "x"})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1.5, "b": "x"}
    assert _leftovers(tmp_path, {"m.json"}) == []


# ------------------------------------------------------------------ TensorBoard helpers
def test_captioned_grid_layout():
    rows = [("input", torch.rand(3, 1, 8, 8)), ("output", torch.rand(3, 1, 8, 8))]
    plain = captioned_grid(rows, pad=2, min_size=16)  # 8 -> scaled x2 to 16
    assert plain.dtype.name == "uint8" and plain.shape[2] == 3
    assert plain.shape[0] == 2 + 2 * (16 + 2)  # two rows of 16 px + padding, no labels or legend
    left = plain.shape[1] - 3 * (16 + 2)  # the caption column
    assert left > 20  # room for "output"
    assert (plain[:, :left] < 128).any()  # the captions are drawn (dark pixels on white)
    # image 0 sits at (pad, left + (cell - 16) // 2), nearest-upscaled: every other pixel is the source
    y, x = 2, left + 1
    src = (rows[0][1][0, 0] * 255).round().to(torch.uint8).numpy()
    assert (plain[y:y + 16:2, x:x + 16:2, 0] == src).all()
    labelled = captioned_grid(rows, labels=["pred a\ntrue b"] * 3, legend=[("disc", (1.0, 0.0, 0.0))], pad=2, min_size=16)
    assert labelled.shape[0] > plain.shape[0] + 20  # two lines of labels and a legend strip below
    assert ((labelled[..., 0] == 255) & (labelled[..., 1] == 0) & (labelled[..., 2] == 0)).any()  # the red swatch


def test_flatten_config():
    flat = flatten({"_target_": "x", "model": {"depth": 3, "name": "u", "_partial_": True},
                    "betas": [0.9, 0.99], "none": None, "flag": False})
    assert flat == {"model.depth": 3, "model.name": "u", "betas": "[0.9, 0.99]", "flag": False}


# ------------------------------------------------------------------ the loop, in-process
def _train(tmp_path: Path, overrides: list[str], name: str = "run") -> dict:
    cfg = compose([*TINY, *overrides])
    run_dir = tmp_path / name
    run_dir.mkdir()
    return train(cfg, run_dir)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_in_process(tmp_path, name):
    size = [] if MODELS[name].padding else ["dataset.size=64"]  # valid convs need >= 44 px at depth 2
    summary = _train(tmp_path, [f"model={name}", "trainer.max_steps=2", "trainer.eval_every=2",
                                "trainer.log_every=1", "model.depth=2", *size])
    assert summary["status"] == "completed" and summary["steps"] == 2 and summary["model"] == name
    assert summary == read_metrics(tmp_path / "run")
    for key in ("final_train_loss", "final_val_loss", "final_val_psnr", "best_val_psnr"):
        assert math.isfinite(summary[key]), key
    assert (tmp_path / "run" / CHECKPOINT).is_file()
    assert len(event_files(tmp_path / "run")) == 1


@pytest.mark.parametrize("overrides", [
    ["task=reconstruct", "optimizer=sgd", "scheduler=cosine", "scheduler.warmup_steps=1"],
    ["optimizer=adamw", "dataset.channels=3", "dataset.size=33", "trainer.grad_clip=1.0"],
    ["diagnostics.grad_norms=false", "diagnostics.images=false", "model=resnet"],
    ["trainer.channels_last=true", "model=densenet", "task=segment", "task.dice_weight=0.5"],
    ["task=classify", "model=highway", "trainer.amp=true"],  # bf16 autocast, on CPU too
    ["task.noise=salt_pepper", "task.amount=0.2", "model=unet_add"],
])
@pytest.mark.long
def test_loop_option_combinations(tmp_path, overrides):
    summary = _train(tmp_path, ["trainer.max_steps=3", "trainer.eval_every=3", "trainer.log_every=1",
                                "model.depth=2", *overrides])
    assert summary["status"] == "completed" and summary["steps"] == 3
    metric = {"segment": "miou", "classify": "acc"}.get(summary["task"], "psnr")
    assert math.isfinite(summary[f"final_val_{metric}"])
    tags = load_events(tmp_path / "run").Tags()
    has_norms = any(t.startswith("grad_norm/") for t in tags["scalars"])
    assert has_norms == ("diagnostics.grad_norms=false" not in overrides)
    assert ("samples/val" in tags["images"]) == ("diagnostics.images=false" not in overrides)


@pytest.mark.long
def test_logged_lr_follows_schedule(tmp_path):
    _train(tmp_path, ["trainer.max_steps=6", "trainer.eval_every=6", "trainer.log_every=1", "model.depth=2",
                      "scheduler=cosine", "scheduler.warmup_steps=3", "optimizer.lr=0.01"])
    logged = [(e.step, e.value) for e in load_events(tmp_path / "run").Scalars("lr")]
    expected = _lrs(warmup_cosine, 6, 0.01, warmup_steps=3)  # lr used by step s is expected[s-1]
    assert [s for s, _ in logged] == list(range(1, 7))
    for s, v in logged:
        assert v == pytest.approx(expected[s - 1], rel=1e-6)


@pytest.mark.long
def test_reproducible_with_same_seed_and_different_with_other(tmp_path):
    common = ["trainer.max_steps=4", "trainer.eval_every=4", "trainer.log_every=2", "model.depth=2"]
    a = _train(tmp_path, [*common, "seed=0"], "a")
    b = _train(tmp_path, [*common, "seed=0"], "b")
    c = _train(tmp_path, [*common, "seed=1"], "c")
    assert a["final_val_psnr"] == b["final_val_psnr"]
    assert a["final_train_loss"] == b["final_train_loss"]
    sa = load_checkpoint(tmp_path / "a" / CHECKPOINT)["model"]
    sb = load_checkpoint(tmp_path / "b" / CHECKPOINT)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert c["final_val_psnr"] != a["final_val_psnr"]
    assert c["final_train_loss"] != a["final_train_loss"]


@pytest.mark.long
def test_jobs_sharing_a_data_set_load_it_once_and_leave_it_as_drawn(tmp_path):
    """An in-process sweep's jobs reuse the last data set loaded (same dataset config): the run must not
    write into it, and loading must leave torch's global RNG as it was (no stream hangs on it)."""
    from skipbench.train import data_cache

    common = ["trainer.max_steps=2", "trainer.eval_every=2", "model.depth=2"]
    data_cache.forget_loaded()
    _train(tmp_path, common, "first")
    cfg = compose([*TINY, *common])
    kept = data_cache.load_data(cfg)
    data_cache.forget_loaded()
    torch.manual_seed(1234)
    rng_before = torch.get_rng_state()
    fresh = data_cache.load_data(cfg)
    assert fresh is not kept and torch.equal(torch.get_rng_state(), rng_before)  # the global RNG untouched
    for split in ("train", "val"):
        for field in ("images", "masks", "labels"):
            assert torch.equal(getattr(getattr(kept, split), field), getattr(getattr(fresh, split), field)), (split, field)
    assert data_cache.load_data(cfg) is fresh  # the second job of the sweep: nothing drawn again
    # another run seed: the same data (they depend on dataset.seed only)
    assert data_cache.load_data(compose([*TINY, *common, "seed=1"])) is fresh
    other = data_cache.load_data(compose([*TINY, *common, "dataset.seed=1"]))
    assert other is not fresh and not torch.equal(other.train.images, fresh.train.images)
    assert data_cache.loaded() == 1  # one data set at a time
    data_cache.forget_loaded()


def test_a_data_set_that_draws_from_the_rng_draws_its_own_stream(monkeypatch):
    """A loader that draws from torch's global RNG (a random split, say) draws the same numbers whatever
    ran before it and leaves the global RNG as it found it, so nothing downstream depends on the cache."""
    from skipbench.train import data_cache

    calls = []

    def drawing_loader(node, **kwargs):
        calls.append(torch.rand(3))
        return f"data {len(calls)}"

    monkeypatch.setattr(data_cache, "instantiate_checked", drawing_loader)
    data_cache.forget_loaded()
    cfg0, cfg1 = compose([*TINY, "seed=0"]), compose([*TINY, "seed=1"])
    torch.manual_seed(5)
    before = torch.get_rng_state()
    first = data_cache.load_data(cfg0)
    assert torch.equal(torch.get_rng_state(), before)
    assert data_cache.load_data(cfg1) is first and len(calls) == 1  # the run seed does not reload it
    data_cache.forget_loaded()
    torch.manual_seed(6)  # another global state before loading: the loader draws the same numbers
    data_cache.load_data(cfg0)
    assert torch.equal(calls[0], calls[1])
    data_cache.forget_loaded()


def test_the_initial_weights_do_not_depend_on_what_ran_before():
    """The model is seeded where it is built (stream "init"): a kept data set, another data set loaded
    first, or any draw from the global RNG before build must not change the initial weights."""
    from skipbench.train import data_cache
    from skipbench.train.loop import build

    cfg = compose([*TINY, "model.depth=2"])
    data_cache.forget_loaded()
    torch.manual_seed(1)
    a = build(cfg).model.state_dict()
    torch.rand(100)  # the global RNG elsewhere; the data set kept from the first build
    b = build(cfg).model.state_dict()
    data_cache.forget_loaded()
    torch.manual_seed(2)
    c = build(cfg).model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]), k
    other_seed = build(compose([*TINY, "model.depth=2", "seed=1"])).model.state_dict()
    assert any(not torch.equal(a[k], other_seed[k]) for k in a if a[k].is_floating_point())
    data_cache.forget_loaded()


@pytest.mark.long
def test_resume_in_process_matches_straight_run(tmp_path):
    """Stopped at step 5 (between log and eval boundaries) and resumed: the same as never stopping."""
    common = ["trainer.eval_every=3", "trainer.log_every=2", "model.depth=2", "optimizer=sgd",
              "optimizer.weight_decay=0.01"]
    straight = _train(tmp_path, [*common, "trainer.max_steps=7"], "straight")
    part = _train(tmp_path, [*common, "trainer.max_steps=5"], "split")
    assert part["steps"] == 5
    resumed = _train(tmp_path, [*common, "trainer.max_steps=7", f"resume={tmp_path / 'split'}"], "resumed")
    assert resumed["steps"] == 7 and resumed["status"] == "completed"
    assert resumed["final_train_loss"] == pytest.approx(straight["final_train_loss"], abs=1e-6)
    assert resumed["final_val_psnr"] == pytest.approx(straight["final_val_psnr"], abs=1e-6)
    s1 = load_checkpoint(tmp_path / "straight" / CHECKPOINT)
    s2 = load_checkpoint(tmp_path / "resumed" / CHECKPOINT)
    assert s1["step"] == s2["step"] == 7
    for k in s1["model"]:
        assert torch.equal(s1["model"][k], s2["model"][k]), k
    # the optimizer state (momentum buffers) continues too
    for k, v in s1["optimizer"]["state"].items():
        assert torch.equal(v["momentum_buffer"], s2["optimizer"]["state"][k]["momentum_buffer"])


@pytest.mark.slow
def test_torch_compile_trains(tmp_path):
    # ~30-60 s of cold compilation on a 2-core CPU: slow, run with `pytest -m slow`.
    summary = _train(tmp_path, ["trainer.compile=true", "trainer.max_steps=3", "trainer.eval_every=3",
                                "trainer.log_every=1", "model.depth=2"])
    assert summary["status"] == "completed" and math.isfinite(summary["final_val_psnr"])


# ================================================================== found by mutation testing (round 2)
# Written from mutmut's survivors in issue 15m (docs/testing.md), formerly tests/test_mutants_loop.py:
# the loop's helpers (evaluation, logging, the summary, run info, thread counts, the stop flag), each
# called directly on a tiny run built from the shipped config; expected values are worked out here.
def tiny_run(*overrides: str):
    return build(compose([*TINY, "dataset.val_size=5", "trainer.batch_size=2", "model.depth=1", *overrides]))


# ---------------------------------------------------------------- evaluate
def test_evaluate_averages_over_the_split_whatever_the_batch_size():
    run = tiny_run()
    ctx = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    by2, first = evaluate(run.model, run.task, run.data.val, 2, ctx)  # batches of 2, 2 and 1
    by5, _ = evaluate(run.model, run.task, run.data.val, 5, ctx)
    assert set(by2) == {"loss", "psnr", "ssim", "input_psnr", "input_psnr_clipped"}
    for k in by2:
        assert by2[k] == pytest.approx(by5[k], rel=1e-5), k
    assert run.model.training  # back in training mode
    assert first[0].shape[0] == 2 and first[1].shape == first[2].shape == (2, 1, 32, 32)  # the first batch
    # the same noisy inputs on every eval (a fixed generator seed)
    again, first_again = evaluate(run.model, run.task, run.data.val, 2, ctx)
    assert again == by2 and torch.equal(first_again[0], first[0])
    # an MSE over the whole split at once, by hand
    with torch.no_grad():
        run.model.eval()
        inputs, target = run.task.make_batch(run.data.val, seeds.generator(seeds.VAL_NOISE_SEED, "val_noise"))
        direct = ((run.model(inputs) - target) ** 2).mean().item()
    assert by5["loss"] == pytest.approx(direct, rel=1e-5)


def test_evaluate_runs_the_model_in_eval_mode():
    run = tiny_run()
    modes = []
    handle = run.model.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    evaluate(run.model, run.task, run.data.val, 2, lambda: torch.autocast("cpu", enabled=False))
    handle.remove()
    assert modes == [False, False, False]


# ---------------------------------------------------------------- eval_and_log, finish
def test_eval_and_log_writes_metrics_best_and_pictures(tmp_path):
    run = tiny_run("diagnostics.num_images=1", "trainer.max_steps=8", "diagnostics.figures_every=3")
    tb, diag = TBLogger(tmp_path), Diagnostics(run.model, run.cfg.diagnostics)
    diag.flow.append((2, [1.0] * len(diag.names)))  # one logged step of gradient norms to draw
    run.step, run.best, run.best_step = 4, 1e9, 2  # a best no eval can beat
    vals = eval_and_log(run, tb, diag, run.data.val, 0.5)
    assert set(vals) == {"val_loss", "val_psnr", "val_ssim", "val_input_psnr", "val_input_psnr_clipped"}
    assert (run.best, run.best_step) == (1e9, 2)
    run.step = 6  # figures_every=3: drawn
    eval_and_log(run, tb, diag, run.data.val, 0.5)
    run.cfg.diagnostics.figures_every = 0  # 0 = only at the end
    run.step = 6
    eval_and_log(run, tb, diag, run.data.val, 0.5)
    run.step, run.best = 8, -math.inf  # the last step: anything beats -inf, and the figures are drawn
    vals8 = eval_and_log(run, tb, diag, run.data.val, None)
    assert (run.best, run.best_step) == (vals8["val_psnr"], 8)
    tb.close()
    ea = load_events(tmp_path)
    scalar = lambda tag: [(e.step, pytest.approx(e.value, rel=1e-5)) for e in ea.Scalars(tag)]  # noqa: E731
    assert scalar("loss/mse/val")[::3] == [(4, vals["val_loss"]), (8, vals8["val_loss"])]
    assert scalar("metric/val_psnr")[::3] == [(4, vals["val_psnr"]), (8, vals8["val_psnr"])]
    assert scalar("metric/best_val_psnr")[::3] == [(4, 1e9), (8, vals8["val_psnr"])]
    assert scalar("hparams/score")[::3] == [(4, vals["val_psnr"]), (8, vals8["val_psnr"])]
    assert scalar("hparams/best_score")[::3] == [(4, 1e9), (8, vals8["val_psnr"])]
    assert "metric/val_loss" not in ea.Tags()["scalars"]
    assert any(t.startswith(f"{LAYER_DETAIL}/act_") for t in ea.Tags()["scalars"])  # activation statistics (per-layer detail)
    assert [i.step for i in ea.Images("z_layer/grad_flow/heatmap")] == [6, 8]
    assert [i.step for i in ea.Images("z_layer/grad_flow/by_depth")] == [6, 8]
    images = ea.Images("samples/val")
    assert [i.step for i in images] == [4, 6, 6, 8]
    # num_images=1 of the batch of 2: one 68-px column (a 64-px image + padding) beside the caption column
    assert 68 + 40 < images[0].width < 2 * 68 + 40


def test_eval_and_log_pictures_carry_the_task_s_labels_and_legend(tmp_path):
    class Recording(TBLogger):
        def images(self, tag, rows, step, labels=None, legend=None):
            calls.append((tag, [c for c, _ in rows], labels, legend))

    calls = []
    run = tiny_run("task=segment", "diagnostics.num_images=1")
    eval_and_log(run, Recording(tmp_path), Diagnostics(run.model, run.cfg.diagnostics), run.data.val, None)
    assert calls == [("samples/val", ["input", "predicted", "true mask"], None, run.task.legend())]
    assert calls[0][3] and len(calls[0][3]) == len(run.task.classes)


def test_finish_writes_the_summary(tmp_path):
    run = tiny_run("task=segment")
    tb = TBLogger(tmp_path)
    run.step, run.train_time, run.data_time, run.best, run.best_step = 6, 2.0, 0.5, 0.25, 4
    run.wall_time = 10.0  # earlier sessions'
    last = {"train_loss": 0.7, "val_loss": 0.8, "val_miou": 0.2, "error": "boom", "other": 1}
    summary = finish(run, tb, tmp_path, "diverged", last, 3.14159)
    assert json.loads((tmp_path / "metrics.json").read_text()) == summary
    assert summary["status"] == "diverged" and summary["model"] == "unet_concat" and summary["task"] == "segment"
    assert (summary["steps"], summary["max_steps"], summary["seed"]) == (6, run.cfg.trainer.max_steps, 0)
    assert (summary["train_time_s"], summary["wall_time_s"], summary["session_wall_s"]) == (2.0, 13.142, 3.142)
    assert (summary["steps_per_s"], summary["data_time_fraction"]) == (3.0, 0.25)
    assert (summary["final_train_loss"], summary["final_val_loss"], summary["final_val_miou"]) == (0.7, 0.8, 0.2)
    assert "final_other" not in summary and "final_error" not in summary
    assert (summary["best_val_miou"], summary["best_step"], summary["error"]) == (0.25, 4, "boom")
    assert summary["params"] == run.n_params and summary["dataset"] == "shapes" and summary["device"] == "cpu"
    assert summary["activations_mb"] > 0 and "signal" not in summary
    run.train_time, run.best = 0.0, -math.inf
    fresh = finish(run, TBLogger(tmp_path / "b"), tmp_path, "interrupted", {"signal": "SIGINT"}, 1.0)
    assert fresh["steps_per_s"] is None and fresh["data_time_fraction"] is None and fresh["best_val_miou"] is None
    assert fresh["signal"] == "SIGINT" and fresh["final_train_loss"] is None


def test_finish_ends_the_hparams_session_only_for_a_completed_run(tmp_path):
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    run = tiny_run()
    assert run.flops > 0  # counted on one validation image
    for status in ("completed", "diverged"):
        tb = TBLogger(tmp_path / status)
        tb.hparams({"x": 1})
        finish(run, tb, tmp_path / status, status, {}, 1.0)
        (events,) = (tmp_path / status).glob("events.out.tfevents*")
        kinds = [HParamsPluginData.FromString(v.metadata.plugin_data.content).WhichOneof("data")
                 for e in LegacyEventFileLoader(str(events)).Load() if e.HasField("summary") for v in e.summary.value
                 if v.metadata.plugin_data.plugin_name == "hparams"]
        assert ("session_end_info" in kinds) == (status == "completed"), status


def test_amp_autocasts_to_bfloat16():
    run = tiny_run("trainer.amp=true")
    x = run.task.make_batch(run.data.val, None)[0][:1]
    with run.autocast():
        assert run.model(x).dtype == torch.bfloat16


def test_a_diverging_run_stops_and_says_so(tmp_path):
    from skipbench.train.loop import train

    cfg = compose([*TINY, "model.depth=1", "optimizer.lr=1e12", "trainer.max_steps=30", "trainer.log_every=1",
                   "trainer.eval_every=30", "diagnostics.images=false", "diagnostics.grad_flow=false"])
    summary = train(cfg, tmp_path)
    assert summary["status"] == "diverged" and summary["steps"] < 30, summary
    assert summary["error"].startswith("training loss is ") and f"at step {summary['steps']}" in summary["error"]


# ---------------------------------------------------------------- run info, threads, stop flag
def test_run_info_says_how_to_reproduce_the_run():
    cfg = OmegaConf.create({"seed": 7, "trainer": {"device": "cpu"}})
    run = SimpleNamespace(device=torch.device("cpu"), cfg=cfg, step=3)
    info = run_info(run, RunContext.local(cfg))
    here = Path(__file__).resolve().parent
    head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert info["git_commit"] == (head or None) and isinstance(info["git_dirty"], bool) == bool(head)
    assert (info["seed"], info["resumed_from_step"], info["device"]) == (7, 3, "cpu")
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()
    assert info["argv"] == sys.argv and info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["started"][:4].isdigit() and info["started"][10] == "T"
    # what the caller knows goes in as given: the loop runs no git itself
    assert run_info(run, RunContext(torch.device("cpu"), info={"git_commit": "abc"}))["git_commit"] == "abc"


def test_launcher_threads_share_the_cores_among_parallel_jobs():
    node = OmegaConf.create
    assert launcher_threads(node({"_target_": "BasicLauncher"}), cores=8) is None  # torch's default
    assert launcher_threads(node({"n_jobs": 2}), cores=8) == 4
    assert launcher_threads(node({"n_jobs": -1}), cores=8) == 1  # joblib: -1 = as many jobs as cores
    assert launcher_threads(node({"n_jobs": -2}), cores=8) == 1  # all cores but one: 7 jobs on 8 cores
    assert launcher_threads(node({"n_jobs": -6}), cores=8) == 2  # 3 jobs
    assert launcher_threads(node({"n_jobs": None}), cores=8) == 8
    assert launcher_threads(node({"n_jobs": 3}), cores=2) == 1
    assert launcher_threads(node({"cpus_per_task": 3}), cores=8) == 3  # submitit: the cores a job was given
    assert launcher_threads(node({"cpus_per_task": None}), cores=8) is None


def test_the_callers_thread_share_reaches_torch():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        build(compose([*TINY, "model.depth=1"]), context=RunContext(torch.device("cpu"), threads=1))
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)  # trainer.num_threads wins over the caller's share
        build(compose([*TINY, "model.depth=1", "trainer.num_threads=2"]), context=RunContext(torch.device("cpu"), threads=1))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_loop_knows_nothing_of_hydra_launchers_or_git():
    import ast

    import skipbench.train.loop as loop

    tree = ast.parse(Path(loop.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in ("hydra", "subprocess", "os")}, imported
    source = Path(loop.__file__).read_text()
    assert "HydraConfig" not in source and '"joblib"' not in source and "rev-parse" not in source


def test_stop_flag_first_signal_asks_second_aborts_handlers_restored():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopFlag() as stop:
        assert stop.reason is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.reason == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert stop.reason == "SIGTERM"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with StopFlag() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.reason == "SIGINT"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_signal_landing_inside_a_log_call_does_not_log_again():
    """CI saw "RuntimeError: reentrant call inside <_io.BufferedWriter name='.../train.log'>": the
    Ctrl-C landed while train.log was flushing and the handler logged. The handler must only set the flag."""
    import logging

    entered, depth = [], [0]

    class SignalsMidEmit(logging.Handler):
        def emit(self, record):
            depth[0] += 1
            entered.append(depth[0])
            if depth[0] == 1 and record.getMessage() == "flushing":
                os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler here, inside this emit
            depth[0] -= 1

    handler, logger = SignalsMidEmit(), logging.getLogger("skipbench")
    logger.addHandler(handler)
    try:
        with StopFlag() as stop:
            logging.getLogger("skipbench.train.loop").warning("flushing")
            assert stop.reason == "SIGINT"
    finally:
        logger.removeHandler(handler)
    assert entered == [1], entered  # one emit, never re-entered from the signal handler


def test_stop_flag_off_the_main_thread_keeps_the_handlers():
    before = signal.getsignal(signal.SIGINT)
    seen = []

    def job():
        with StopFlag() as stop:
            seen.append((stop.reason, signal.getsignal(signal.SIGINT)))

    t = threading.Thread(target=job)
    t.start()
    t.join()
    assert seen == [(None, before)]
