"""``skipbench report``: discovery, grouping, statistics, files and plots.

Most tests build synthetic run folders (config, metrics.json, TensorBoard events with known values),
so every expected number is computed here by hand; one test reports on two real tiny runs. The
statistics, values, grouping and curve functions are also called directly, on runs built in memory.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from skipbench.report.aggregate import Group, build_report
from skipbench.report.cli import main
from skipbench.report.curves import grad_norm_table, mean_curve
from skipbench.report.grouping import differing_keys, format_value, label_keys, resolve_key
from skipbench.report.runs import ReportError, Run, load_runs, read_scalars
from skipbench.report.stats import Summary, _betainc, t_cdf, t_quantile
from skipbench.report.values import (
    available_metrics, best_value, choose_metric, final_value, steps_to_target, train_seconds_at,
)
from skipbench.run_folder import metric_tag

T_975_DF2 = 4.303  # Student t, 97.5% quantile, 2 degrees of freedom (from any table)
STEPS = [10, 20, 30, 40, 50]
TRAIN_TIME, MAX_STEPS = 10.0, 50  # so a run spends 0.2 s per step

# Two groups x 3 seeds: val_psnr at STEPS; the last value is the final one.
CURVES = {
    "unet_concat": [
        [10.0, 14.0, 20.5, 19.0, 20.0],  # best 20.5
        [12.0, 16.0, 19.0, 20.5, 21.0],
        [15.0, 17.0, 20.0, 22.0, 23.0],
    ],
    "autoencoder": [
        [8.0, 11.0, 13.0, 14.5, 15.0],
        [9.0, 12.0, 14.0, 15.0, 15.5],
        [10.0, 13.0, 15.0, 16.0, 16.5],
    ],
}
LONG_SKIP = {"unet_concat": "concat", "autoencoder": "none"}
PARAMS = {"unet_concat": 1200, "autoencoder": 1000}
PEAK_MB = {"unet_concat": 420.0, "autoencoder": 400.0}  # metrics.json peak_memory_mb
LAYERS = ["00_enc0/conv1", "01_bottleneck/conv1", "02_dec0/conv1", "03_head/conv"]  # skeleton layer names


def config(model: str, seed: int, width: int = 8, device: str = "auto", progress: bool = True) -> dict:
    return {
        "model": {"_target_": "skipbench.models.build_model", "name": model, "long_skip": LONG_SKIP[model],
                  "block": "plain", "depth": 3, "width": width, "blocks_per_level": 1},
        "dataset": {"_target_": "skipbench.data.shapes", "size": 32, "train_size": 256, "seed": 0},
        "task": {"_target_": "skipbench.tasks.Denoise", "sigma": 0.2},
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.001, "betas": [0.9, 0.999]},
        "trainer": {"max_steps": MAX_STEPS, "eval_every": 10, "log_every": 10, "device": device,
                    "num_threads": None, "progress": progress},
        "seed": seed,
        "resume": f"/home/someone/elsewhere/run{seed}" if seed == 2 else None,  # paths do not matter
    }


def write_events(run_dir: Path, curve: list[float], layer_scale: float = 1.0) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(run_dir))
    w.add_scalar("model/params", 1000, 0)
    for i, (step, value) in enumerate(zip(STEPS, curve)):
        w.add_scalar("metric/val_psnr", value, step)
        w.add_scalar("loss/mse/train", 1.0 / (1 + i), step)
        w.add_scalar("loss/mse/val", 1.2 / (1 + i), step)
        w.add_scalar("perf/steps_per_s", 5.0, step)
        for depth, name in enumerate(LAYERS):  # grad norms shrink with depth and with steps
            w.add_scalar(f"grad_norm/{name}", layer_scale * 10.0 ** (-depth) / (1 + i), step)
            w.add_scalar(f"grad_level/{name.split('/')[0]}", math.log10(layer_scale * 10.0 ** (-depth) / (1 + i)), step)
        w.add_scalar("grad_norm/total", 1.0, step)
    w.close()


def make_run(root: Path, name: str, model: str, seed: int, curve: list[float] | None, *, status: str = "completed",
             metrics: dict | None = None, events: bool = True, **cfg) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config(model, seed, **cfg), sort_keys=False))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model={model}", f"seed={seed}"]))
    if events and curve:
        write_events(run, curve)
    if metrics is None and status is not None:
        metrics = {
            "status": status, "model": model, "task": "denoise", "dataset": "shapes", "steps": MAX_STEPS,
            "max_steps": MAX_STEPS, "params": PARAMS[model], "train_time_s": TRAIN_TIME, "wall_time_s": 12.0,
            "steps_per_s": MAX_STEPS / TRAIN_TIME, "final_train_loss": 0.2, "final_val_loss": 0.2,
            "final_val_psnr": curve[-1], "final_val_input_psnr": 14.0, "best_val_psnr": max(curve),
            "best_step": STEPS[curve.index(max(curve))], "device": "cpu", "seed": seed,
            "peak_memory_mb": PEAK_MB[model], "peak_memory_kind": "cpu_peak_rss", "activations_mb": PEAK_MB[model] / 10,
        }
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """2 groups x 3 seeds, plus 1 incomplete, 1 diverged and 1 failed run."""
    root = tmp_path / "multirun" / "2025-01-01_00-00-00"
    job = 0
    for model, curves in CURVES.items():
        for seed, curve in enumerate(curves):
            # device and progress differ between seeds: they must not split groups
            make_run(root, f"{job}_model={model},seed={seed}", model, seed, curve,
                     device=["auto", "cpu", "auto"][seed], progress=seed != 1)
            job += 1
    # still running: config and events, no metrics.json
    make_run(root, f"{job}_model=unet_concat,seed=3", "unet_concat", 3, [11.0, 12.0], status=None)
    # diverged autoencoder run: NaN values, counted as a failure of its group
    make_run(root, f"{job + 1}_model=autoencoder,seed=3", "autoencoder", 3, [9.0, 10.0], metrics={
        "status": "diverged", "model": "autoencoder", "steps": 20, "max_steps": MAX_STEPS, "params": 1000,
        "train_time_s": 4.0, "final_train_loss": math.nan, "final_val_psnr": 10.0, "best_val_psnr": 10.0, "seed": 3})
    # a sweep job that failed before training: only status and error
    make_run(root, f"{job + 2}_model=unet_concat,seed=4", "unet_concat", 4, None, events=False,
             metrics={"status": "failed", "error": "model.depth=9: too deep for 32x32 images"})
    return root


def expected(values: list[float]) -> tuple[float, float, float]:
    mean, std = statistics.mean(values), statistics.stdev(values)
    return mean, std, T_975_DF2 * std / math.sqrt(len(values))


def finals(model: str) -> list[float]:
    return [c[-1] for c in CURVES[model]]


# ---------------------------------------------------------------- statistics
def test_t_quantile_matches_the_table():
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228, 20: 2.086, 29: 2.045, 30: 2.042}
    for df, t in table.items():
        assert t_quantile(0.975, df) == pytest.approx(t, abs=6e-4), df
    assert t_quantile(0.975, 10_000) == pytest.approx(1.960, abs=1e-3)
    assert t_quantile(0.025, 2) == pytest.approx(-4.303, abs=6e-4)


def test_groups_statistics_and_steps_to_target(sweep: Path):
    runs = load_runs(sweep)
    assert len(runs) == 9
    report = build_report(runs, root=str(sweep))
    assert report.metric == "val_psnr" and report.higher_is_better
    # grouped by what differs (seed, device, progress, resume excluded); long_skip follows the name
    assert report.group_keys == ["model.name", "model.long_skip"]
    assert report.shown_keys == ["model.name"]
    assert [g.labels["model.name"] for g in report.groups] == ["unet_concat", "autoencoder"]  # best first
    assert [r.name for r in report.incomplete] == ["6_model=unet_concat,seed=3"]

    unet, ae = report.groups
    assert (unet.final.n, unet.failed, len(unet.runs)) == (3, 1, 4)
    assert (ae.final.n, ae.failed, len(ae.runs)) == (3, 1, 4)
    for group, model in ((unet, "unet_concat"), (ae, "autoencoder")):
        mean, std, ci = expected(finals(model))
        assert group.final.mean == pytest.approx(mean, rel=1e-12)
        assert group.final.std == pytest.approx(std, rel=1e-12)
        assert group.final.ci95 == pytest.approx(ci, rel=2e-4)  # 4.303 is rounded
        bmean, bstd, _ = expected([max(c) for c in CURVES[model]])
        assert (group.best.mean, group.best.std) == (pytest.approx(bmean), pytest.approx(bstd))
    assert unet.params == 1200 and unet.steps_per_s == pytest.approx(5.0)
    assert (unet.peak_memory_mb, ae.peak_memory_mb) == (PEAK_MB["unet_concat"], PEAK_MB["autoencoder"])
    assert (unet.activations_mb, ae.activations_mb) == (42.0, 40.0)

    # default target: the lowest group mean, here the autoencoder's
    target = statistics.mean(finals("autoencoder"))
    assert report.target == pytest.approx(target) and report.target_source == "default"
    assert unet.steps_to_target == [30, 20, 20]
    assert unet.mean_steps_to_target == pytest.approx(70 / 3)
    assert unet.seconds_to_target == pytest.approx([6.0, 4.0, 4.0])  # train_time_s * step / steps
    assert ae.steps_to_target == [None, None, 40]  # two seeds never get there
    assert ae.mean_steps_to_target == 40


def test_group_by_target_and_metric_options(sweep: Path):
    runs = load_runs(sweep)
    report = build_report(runs, group_by=["model"], target=20.0)
    assert report.group_keys == ["model.name"] and report.target_source == "given"
    unet, ae = report.groups
    assert unet.steps_to_target == [30, 40, 30]
    assert ae.steps_to_target == [None, None, None]
    # one key for all runs: the two models are still split (architectures are never pooled), said so
    pooled = build_report(runs, group_by=["dataset.size"])
    assert len(pooled.groups) == 2 and [g.final.n for g in pooled.groups] == [3, 3]
    assert pooled.split_keys == ["model.name"] and not pooled.pooled_keys
    # a loss: lower is better, so the order is by ascending mean
    loss = build_report(runs, metric="loss")  # "loss" -> val_loss
    assert loss.metric == "val_loss" and not loss.higher_is_better
    with pytest.raises(ReportError, match="unknown metric"):
        build_report(runs, metric="accuracy")
    with pytest.raises(ReportError, match="unknown config key"):
        build_report(runs, group_by=["nonsense"])


def test_differing_width_is_a_group_key(tmp_path: Path):
    for seed in range(2):
        for width in (8, 16):
            make_run(tmp_path, f"w{width}_s{seed}", "unet_concat", seed, CURVES["unet_concat"][seed], width=width)
    report = build_report(load_runs(tmp_path))
    assert report.group_keys == report.shown_keys == ["model.width"]
    assert sorted(g.labels["model.width"] for g in report.groups) == [8, 16]
    assert all(g.final.n == 2 and g.final.ci95 is None for g in report.groups)  # CI needs n >= 3


def test_interrupted_and_unreadable_runs_are_left_out(tmp_path: Path, capsys):
    for seed in range(2):
        make_run(tmp_path, f"ok{seed}", "unet_concat", seed, CURVES["unet_concat"][seed])
    make_run(tmp_path, "stopped", "unet_concat", 2, CURVES["unet_concat"][2], status="interrupted")
    broken = make_run(tmp_path, "broken", "unet_concat", 3, CURVES["unet_concat"][2])
    (broken / ".hydra" / "config.yaml").write_text("model: [unclosed\n")
    assert main([str(tmp_path), "--no-plots"]) == 0
    out, err = capsys.readouterr()
    assert "1 interrupted" in out and "| all runs | 2 |" in out
    assert "skipped:" in err and "broken" in err
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["interrupted"] == ["stopped"] and doc["groups"][0]["n"] == 2


def test_duplicate_steps_keep_the_last_value(tmp_path: Path):
    """A run resumed in place: two event files, step 20 written by both; the later one wins."""
    from torch.utils.tensorboard import SummaryWriter

    for values, wall in (({10: 1.0, 20: 2.0}, 1000.0), ({20: 5.0, 30: 6.0}, 2000.0)):
        w = SummaryWriter(log_dir=str(tmp_path))
        for step, v in values.items():
            w.add_scalar("metric/val_psnr", v, step, walltime=wall + step)
        w.close()
    assert len(list(tmp_path.glob("events.out.tfevents*"))) == 2
    assert read_scalars(tmp_path)["metric/val_psnr"] == [(10, 1.0), (20, 5.0), (30, 6.0)]


# ---------------------------------------------------------------- the command
@pytest.mark.long
def test_cli_writes_report_files_and_plots(sweep: Path, tmp_path: Path, capsys):
    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "1 incomplete" in printed.out and "not in the statistics" in printed.out.lower()
    assert "| unet_concat" in printed.out and "| autoencoder" in printed.out
    mean, std, ci = expected(finals("unet_concat"))
    assert f"{mean:.3f} ± {std:.3f}" in printed.out
    assert f"{t_quantile(0.975, 2) * std / math.sqrt(3):.3f}" in printed.out
    assert "40 (1/3 reached)" in printed.out
    assert "report.md" in printed.err

    for name in ("report.md", "report.csv", "report.json"):
        assert (out / name).stat().st_size > 0
    for name in ("curves.png", "grad_norm_depth.png", "grad_flow.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    # the same figures and the table as a TensorBoard run in the report folder
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(out / "_report"))
    ea.Reload()
    assert sorted(ea.Tags()["images"]) == ["report/curves", "report/grad_flow", "report/grad_norm_depth"]
    assert "report/summary/text_summary" in ea.Tags()["tensors"]  # the table, for the Text tab
    assert main([str(sweep), "--out", str(out)]) == 0  # again: replaces the run, no duplicate pictures
    assert len(list((out / "_report").glob("events.out.tfevents.*"))) == 1
    capsys.readouterr()

    doc = json.loads((out / "report.json").read_text())
    assert doc["metric"] == "val_psnr" and doc["counts"]["incomplete"] == 1 and doc["counts"]["failed"] == 2
    g0 = doc["groups"][0]
    assert g0["keys"] == {"model": "unet_concat"} and g0["failed"] == 1
    assert g0["final_val_psnr"]["values"] == finals("unet_concat")
    assert g0["final_val_psnr"]["ci95"] == pytest.approx(ci, rel=2e-4)
    rows = {r["run"]: r for r in doc["runs"]}
    assert rows["0_model=unet_concat,seed=0"]["steps_to_target"] == 30
    assert rows["6_model=unet_concat,seed=3"]["status"] == "incomplete"
    assert rows["7_model=autoencoder,seed=3"]["status"] == "diverged"
    assert "too deep" in rows["8_model=unet_concat,seed=4"]["error"]

    csv_lines = (out / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("group,model,n,failed,val_psnr_mean")
    assert csv_lines[1].startswith("model=unet_concat,unet_concat,3,1,")

    # one format only: written alone, and printed as it is
    assert main([str(sweep), "--out", str(tmp_path / "csv"), "--format", "csv", "--no-plots"]) == 0
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == ["report.csv"]
    assert capsys.readouterr().out.startswith("group,model,")


@pytest.mark.parametrize("case", ["empty", "missing", "no_runs", "only_incomplete"])
def test_nothing_to_report_is_one_line_and_exit_2(tmp_path: Path, capsys, case):
    target = tmp_path / "dir"
    if case != "missing":
        target.mkdir()
    if case == "no_runs":
        (target / "notes.txt").write_text("hello")
    if case == "only_incomplete":
        make_run(target, "run", "unet_concat", 0, [1.0, 2.0], status=None)
    assert main([str(target)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("skipbench report: error:"), err


def test_bad_arguments_are_one_line(tmp_path: Path, capsys):
    assert main([str(tmp_path), "--target", "abc"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--target" in err


def test_empty_folder_in_a_subprocess_has_no_traceback(tmp_path: Path):
    res = subprocess.run([sys.executable, "-m", "skipbench.report.cli", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and "Traceback" not in res.stderr
    assert "no runs found" in res.stderr


@pytest.mark.long
def test_report_on_real_runs(tmp_path: Path, capsys, tiny_sweep):
    # the session's real sweep; its two denoising runs (autoencoder, unet_concat) are reported on
    from conftest import SWEEP_MODELS, job_dir

    shared, res = tiny_sweep
    assert res.returncode == 0, res.stderr[-3000:]
    sweep = tmp_path / "sweep"
    for model in SWEEP_MODELS:
        job = job_dir(shared, "task=denoise", f"model={model}")
        shutil.copytree(job, sweep / job.name)

    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert "2 runs found: 2 completed" in printed
    doc = json.loads((sweep / "report.json").read_text())
    assert doc["group_keys"][0] == "model.name" and doc["shown_keys"] == ["model.name"]
    assert sorted(g["keys"]["model"] for g in doc["groups"]) == ["autoencoder", "unet_concat"]
    for g in doc["groups"]:
        assert g["n"] == 1 and g["final_val_psnr"]["std"] is None and g["params"] > 0
    for run in doc["runs"]:
        assert run["status"] == "completed" and run["steps"] == 4
    for name in ("curves.png", "grad_norm_depth.png", "grad_flow.png"):
        assert (sweep / name).stat().st_size > 10_000


# ================================================================== found by mutation testing (round 2)
# Written from mutmut's survivors in issue 15m (docs/testing.md), formerly tests/test_mutants_report.py:
# statistics, values, grouping and curves called directly. Runs are built in memory (config,
# metrics.json content and scalar curves given directly); every expected number is worked out by hand
# or taken from a printed t table.
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
