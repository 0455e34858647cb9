"""The report groups only comparable runs: never another task, data set, step budget or architecture in
one row; structural numbers never averaged; probe folders left out (issue 26)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from skipbench.report.aggregate import build_report
from skipbench.report.cli import main
from skipbench.report.runs import load_runs

from test_report import make_run

CURVE = [10.0, 12.0, 14.0, 15.0]


def _edit_config(run: Path, **changes) -> None:
    cfg_file = run / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _edit_metrics(run: Path, **changes) -> None:
    m = json.loads((run / "metrics.json").read_text())
    m.update(changes)
    (run / "metrics.json").write_text(json.dumps(m))


def test_runs_of_several_tasks_are_refused_in_one_line_and_reported_with_task(tmp_path, capsys):
    for seed in range(2):
        make_run(tmp_path, f"d{seed}", "unet_concat", seed, CURVE)
        seg = make_run(tmp_path, f"s{seed}", "unet_concat", seed, CURVE)
        _edit_config(seg, **{"task._target_": "skipbench.tasks.Segment"})
    code = main([str(tmp_path), "--no-plots"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "2 tasks (denoise: 2, segment: 2)" in err[0] and "--task" in err[0]
    assert main([str(tmp_path), "--no-plots", "--task", "denoise", "--format", "json", "--out", str(tmp_path / "r")]) == 0
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert sorted(r["run"] for r in doc["runs"]) == ["d0", "d1"] and doc["groups"][0]["n"] == 2
    assert main([str(tmp_path), "--no-plots", "--task", "classify"]) == 2
    assert "tasks there: denoise, segment" in capsys.readouterr().err


def test_group_by_never_pools_step_budgets_data_sets_or_architectures(tmp_path):
    runs = {}
    for seed in range(2):
        runs[f"a{seed}"] = make_run(tmp_path, f"a{seed}", "unet_concat", seed, CURVE)
        runs[f"long{seed}"] = make_run(tmp_path, f"long{seed}", "unet_concat", seed, CURVE)
        _edit_config(runs[f"long{seed}"], **{"trainer.max_steps": 400})
        runs[f"wide{seed}"] = make_run(tmp_path, f"wide{seed}", "unet_concat", seed, CURVE, width=16)
        _edit_metrics(runs[f"wide{seed}"], params=4800)
        runs[f"big{seed}"] = make_run(tmp_path, f"big{seed}", "unet_concat", seed, CURVE)
        _edit_config(runs[f"big{seed}"], **{"dataset.size": 64})
    report = build_report(load_runs(tmp_path), root=str(tmp_path), group_by=["model"])
    assert len(report.groups) == 4 and all(g.final.n == 2 for g in report.groups)  # not one row of 8
    assert set(report.split_keys) == {"trainer.max_steps", "model.width", "dataset.size"}
    members = {frozenset(r.name for r in g.runs) for g in report.groups}
    assert frozenset({"wide0", "wide1"}) in members and frozenset({"long0", "long1"}) in members
    params = sorted(g.params for g in report.groups)
    assert params == [1200, 1200, 1200, 4800]  # each architecture's own count, never a mean of two
    from skipbench.report.render import summary_markdown

    assert "also split by" in summary_markdown(report) and "never pooled" in summary_markdown(report)


def test_parameters_are_not_averaged_over_runs_that_differ_in_them(tmp_path):
    for seed in range(2):
        run = make_run(tmp_path, f"r{seed}", "unet_concat", seed, CURVE)
        _edit_metrics(run, params=1000 + seed)  # the same config, different counts: say nothing
    (group,) = build_report(load_runs(tmp_path), root=str(tmp_path)).groups
    assert group.params is None


def test_probe_folders_are_left_out_with_a_note(tmp_path, capsys):
    make_run(tmp_path, "trained", "unet_concat", 0, CURVE)
    probe = make_run(tmp_path, "probed", "unet_concat", 0, None, events=False,
                     metrics={"status": "completed", "model": "unet_concat", "seed": 0, "params": 1200, "probe": "probe.json"})
    (probe / "probe.json").write_text("{}")
    notes = []
    runs = load_runs(tmp_path, on_skip=notes.append)
    assert [r.name for r in runs] == ["trained"]
    assert len(notes) == 1 and "left out 1 probe folder" in notes[0] and "probed" in notes[0]
    only = tmp_path / "only_probes"
    make_run(only, "p", "unet_concat", 0, None, events=False, metrics={"status": "completed", "probe": "probe.json"})
    assert main([str(only), "--no-plots"]) == 2
    assert "only probe folders" in capsys.readouterr().err


def test_the_model_seed_copy_of_the_run_seed_never_splits_groups(tmp_path):
    for seed in range(3):
        run = make_run(tmp_path, f"r{seed}", "unet_concat", seed, CURVE)
        _edit_config(run, **{"model.seed": seed})  # model.seed is ${seed} (stochastic depth draws from it)
    (group,) = build_report(load_runs(tmp_path), root=str(tmp_path)).groups
    assert group.final.n == 3
