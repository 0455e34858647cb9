"""``skipbench report``: discovery, grouping, statistics, files and plots.

Most tests build synthetic run folders (config, metrics.json, TensorBoard events with known values),
so every expected number is computed here by hand; one test reports on two real tiny runs.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from skipbench.report.aggregate import build_report, t_quantile
from skipbench.report.cli import main
from skipbench.report.runs import ReportError, load_runs, read_scalars

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
    # one key for all runs: a single group pooling both models, said so
    pooled = build_report(runs, group_by=["dataset.size"])
    assert len(pooled.groups) == 1 and pooled.groups[0].final.n == 6
    assert "model.name" in pooled.pooled_keys
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
