"""``skipbench report`` on runs carrying lesion.json / landscape.json: every variant's lesion curve on one
axis (one line per variant, the mean over its seeds), the contours side by side on the task's fixed colour
scale, the PNGs in the report and in ``_report``, and one ``_report/lesion/<variant>`` curve per variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from skipbench.analyze.run import LOG10_LOSS_RANGE
from skipbench.report.aggregate import build_report
from skipbench.report.analyses import LANDSCAPE_PNG, LESION_PNG, analysis_figures
from skipbench.report.cli import main
from skipbench.report.runs import load_runs
from skipbench.run_folder import EVENTS_PREFIX, LANDSCAPE, LESION, LESION_K, REPORT_LESION_RUNS

BLOCKS = {"plain": 8.0, "residual": 1.0, "highway": 2.0}  # PSNR lost per block deleted


def _lesion(block: str, seed: int) -> dict:
    drop = BLOCKS[block]
    k = [{"k": i, "psnr": [25 - drop * i + seed, 24 - drop * i + seed], "loss": [0.01, 0.01],
          "mean": 24.5 - drop * i + seed, "std": 0.5, "loss_mean": 0.01} for i in (1, 2, 3)]
    return {"status": "completed", "analysis": "lesion", "model": "resnet", "block": block, "task": "denoise",
            "metric": "psnr", "seed": seed, "baseline": {"psnr": 26.0 + seed, "loss": 0.003}, "k": k, "single": []}


def _landscape(block: str, seed: int) -> dict:
    axis = [-1.0, 0.0, 1.0]
    steep = BLOCKS[block]
    grid = [[1e-3 * 10 ** (steep * (a * a + b * b) / 4) for b in axis] for a in axis]
    return {"status": "completed", "analysis": "landscape", "model": "resnet", "task": "denoise", "loss_name": "mse",
            "seed": seed, "axis": axis, "grid": grid, "line": grid[1], "nonconvex_fraction": 0.0}


def _run(root: Path, block: str, seed: int, analyses: bool = True) -> None:
    run = root / f"{block}_{seed}"
    (run / ".hydra").mkdir(parents=True)
    cfg = {"model": {"name": "resnet", "block": block, "long_skip": "none", "depth": 3, "width": 8},
           "task": {"_target_": "skipbench.tasks.Denoise", "sigma": 0.2}, "trainer": {"max_steps": 10}, "seed": seed}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model.block={block}", f"seed={seed}"]))
    (run / "metrics.json").write_text(json.dumps({"status": "completed", "task": "denoise", "steps": 10,
                                                  "max_steps": 10, "final_val_psnr": 20.0 + seed, "seed": seed}))
    if analyses:
        (run / LESION).write_text(json.dumps(_lesion(block, seed)))
        (run / LANDSCAPE).write_text(json.dumps(_landscape(block, seed)))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    for block in BLOCKS:
        for seed in (0, 1):
            _run(tmp_path, block, seed)
    return tmp_path


def test_every_variants_lesion_curve_is_on_one_axis(sweep):
    figures = analysis_figures(build_report(load_runs(sweep), root=str(sweep)))
    ax = figures[LESION_PNG].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert len(lines) == len(BLOCKS)  # one line per variant, all on this one axis
    for block, drop in BLOCKS.items():
        (line,) = [v for k, v in lines.items() if block in k]
        assert list(line.get_xdata()) == [0, 1, 2, 3]
        # the mean over the two seeds (seed 0 and 1: +0.5) of each run's mean over its draws
        assert list(line.get_ydata()) == pytest.approx([26.5] + [25.0 - drop * i for i in (1, 2, 3)])


def test_landscape_contours_side_by_side_on_the_tasks_fixed_scale(sweep):
    fig = analysis_figures(build_report(load_runs(sweep), root=str(sweep)))[LANDSCAPE_PNG]
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == len(BLOCKS)
    ranges = set()
    for ax in panels:
        levels = next(c for c in ax.get_children() if hasattr(c, "levels")).levels
        ranges.add((float(min(levels)), float(max(levels))))
    assert ranges == {LOG10_LOSS_RANGE["denoise"]}
    assert all("seed 0" in ax.get_title() for ax in panels)  # the lowest seed's slice, not an average


@pytest.mark.long
def test_report_writes_the_pictures_and_one_report_curve_per_variant(sweep, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for _ in range(2):  # a second report replaces the first one's curves
        assert main([str(sweep)]) == 0
    assert (sweep / LESION_PNG).is_file() and (sweep / LANDSCAPE_PNG).is_file()
    assert LESION_PNG in (sweep / "report.md").read_text()
    images = EventAccumulator(str(sweep / "_report"))
    images.Reload()
    assert {"report/lesion_curves", "report/landscape_contours"} <= set(images.Tags()["images"])
    variants = sorted(p for p in (sweep / "_report" / REPORT_LESION_RUNS).iterdir())
    assert len(variants) == len(BLOCKS)
    for folder in variants:
        assert len(list(folder.glob(f"{EVENTS_PREFIX}.*"))) == 1
        acc = EventAccumulator(str(folder))
        acc.Reload()
        assert [e.step for e in acc.Scalars(LESION_K)] == [0, 1, 2, 3]


def test_runs_without_analyses_draw_no_analysis_figure(tmp_path):
    for seed in (0, 1):
        _run(tmp_path, "plain", seed, analyses=False)
        _run(tmp_path, "residual", seed, analyses=False)
    assert analysis_figures(build_report(load_runs(tmp_path), root=str(tmp_path))) == {}
