"""The training loop's helpers (``skipbench.train.loop``): evaluation, logging, the summary, run info,
thread counts and the stop flag, each called directly on a tiny run built from the shipped config.
Behaviour the mutation run showed no test pinned down; expected values are worked out here.
"""

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
from omegaconf import OmegaConf, open_dict

from skipbench import seeds
from skipbench.train.diagnostics import Diagnostics
from skipbench.commands.job import launcher_threads
from skipbench.train.context import RunContext
from skipbench.train.loop import StopFlag, build, eval_and_log, evaluate, finish, run_info
from skipbench.train.tb import TBLogger

from conftest import TINY, compose, load_events


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
    assert any(t.startswith("act_") for t in ea.Tags()["scalars"])  # activation statistics of the sample batch
    assert [i.step for i in ea.Images("grad_flow/heatmap")] == [6, 8]
    assert [i.step for i in ea.Images("grad_flow/by_depth")] == [6, 8]
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
    last = {"train_loss": 0.7, "val_loss": 0.8, "val_miou": 0.2, "error": "boom", "other": 1}
    summary = finish(run, tb, tmp_path, "diverged", last, 3.14159)
    assert json.loads((tmp_path / "metrics.json").read_text()) == summary
    assert summary["status"] == "diverged" and summary["model"] == "unet_concat" and summary["task"] == "segment"
    assert (summary["steps"], summary["max_steps"], summary["seed"]) == (6, run.cfg.trainer.max_steps, 0)
    assert (summary["train_time_s"], summary["wall_time_s"]) == (2.0, 3.142)
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
