"""What ``skipbench analyze`` writes to TensorBoard: the lesion scalars by k are lesion.json's numbers, the
contour colour scale is fixed per task (two runs of one task: one range), every task has a scale, and a
re-run replaces the analysis' events (in ``<run>/analysis/<kind>``) without doubling them or touching the
training's."""

from __future__ import annotations

from pathlib import Path

import pytest

from skipbench.analyze.run import (LOG10_LOSS_RANGE, landscape_figure, write_landscape_tb, write_lesion_tb)
from skipbench.run_folder import (EVENTS_PREFIX, LANDSCAPE_FIGURE, LANDSCAPE_INTERP, LANDSCAPE_LINE, LANDSCAPE_MESH,
                                  LESION_FIGURE, LESION_K, LESION_K_LOSS, LESION_SINGLE, analysis_tb_dir)

ROOT = Path(__file__).resolve().parents[2]


def lesion_result(shift: float = 0.0) -> dict:
    """A lesion.json as ``analyze lesion`` writes it: 3 values of k, 2 draws each, 2 single lesions."""
    k = [{"k": i, "psnr": [20 - 3 * i + shift, 19 - 3 * i + shift], "loss": [0.01 * i, 0.02 * i],
          "mean": 19.5 - 3 * i + shift, "std": 0.7, "loss_mean": 0.015 * i} for i in (1, 2, 3)]
    return {"status": "completed", "analysis": "lesion", "model": "resnet", "task": "denoise", "metric": "psnr",
            "baseline": {"psnr": 24.0 + shift, "loss": 0.004}, "k": k,
            "single": [{"block": "enc0.0", "kind": "residual", "psnr": 23.0, "loss": 0.005},
                       {"block": "enc1.0", "kind": "residual", "psnr": 22.5, "loss": 0.006}]}


def landscape_result(scale: float, task: str = "denoise") -> dict:
    """A landscape.json with a 5x5 bowl whose losses span ``scale`` decades above 1e-3."""
    axis = [-1.0, -0.5, 0.0, 0.5, 1.0]
    grid = [[1e-3 * 10 ** (scale * (a * a + b * b) / 2) for b in axis] for a in axis]
    return {"status": "completed", "analysis": "landscape", "model": "resnet", "task": task, "loss_name": "mse",
            "axis": axis, "grid": grid, "line": [row[2] for row in grid], "nonconvex_fraction": 0.0,
            "interpolation": {"alpha": [0.0, 0.5, 1.0], "loss": [0.3, 0.1, 0.01]}}


def read(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_lesion_scalars_by_k_are_the_numbers_of_lesion_json(tmp_path):
    result = lesion_result()
    write_lesion_tb(tmp_path, result)
    acc = read(analysis_tb_dir(tmp_path, "lesion"))
    metric = {e.step: e.value for e in acc.Scalars(LESION_K)}
    loss = {e.step: e.value for e in acc.Scalars(LESION_K_LOSS)}
    assert metric == pytest.approx({0: 24.0, **{c["k"]: c["mean"] for c in result["k"]}})
    assert loss == pytest.approx({0: 0.004, **{c["k"]: c["loss_mean"] for c in result["k"]}})
    assert [e.value for e in acc.Scalars(LESION_SINGLE)] == pytest.approx([23.0, 22.5])
    assert LESION_FIGURE in acc.Tags()["images"]


def test_rerunning_an_analysis_replaces_its_events_and_leaves_the_trainings(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(tmp_path))  # the training's own event file, in the run folder itself
    w.add_scalar("loss/mse/train", 1.0, 0)
    w.close()
    training = sorted(tmp_path.glob(f"{EVENTS_PREFIX}.*"))
    for shift in (0.0, 1.0):  # the same analysis twice, the second time with other numbers
        write_lesion_tb(tmp_path, lesion_result(shift))
        write_landscape_tb(tmp_path, landscape_result(2.0))
    acc = read(analysis_tb_dir(tmp_path, "lesion"))
    steps = [e.step for e in acc.Scalars(LESION_K)]
    assert steps == [0, 1, 2, 3]  # once each, not twice
    assert acc.Scalars(LESION_K)[0].value == pytest.approx(25.0)  # the second run's numbers
    scape = read(analysis_tb_dir(tmp_path, "landscape"))
    assert [e.step for e in scape.Scalars(LANDSCAPE_LINE)] == [0, 1, 2, 3, 4]
    assert [e.step for e in scape.Scalars(LANDSCAPE_INTERP)] == [0, 1, 2]
    assert LANDSCAPE_FIGURE in scape.Tags()["images"]
    assert any(t.startswith(LANDSCAPE_MESH) for t in scape.Tags()["tensors"])  # the mesh plugin's tensors
    assert sorted(tmp_path.glob(f"{EVENTS_PREFIX}.*")) == training  # the training's events untouched
    assert [e.step for e in read(tmp_path).Scalars("loss/mse/train")] == [0]


def _levels(ax) -> list[float]:
    """The filled contour's levels of one panel (its colour scale: contourf maps them onto the colours)."""
    return [float(v) for v in next(c for c in ax.get_children() if hasattr(c, "levels")).levels]


def _colour_range(fig) -> tuple[float, float]:
    return min(_levels(fig.axes[0])), max(_levels(fig.axes[0]))


def test_contour_colour_scale_is_fixed_per_task_not_per_run():
    flat, steep = landscape_result(0.5), landscape_result(3.5)  # two runs of one task, losses over 0.5 and 3.5 decades
    a, b = landscape_figure({"flat": flat}), landscape_figure({"steep": steep})
    assert _colour_range(a) == _colour_range(b) == LOG10_LOSS_RANGE["denoise"]
    assert a.axes[-1].get_ylabel() == b.axes[-1].get_ylabel()  # the colour bar states the one scale
    lo, hi = LOG10_LOSS_RANGE["denoise"]
    assert f"{lo:g} to {hi:g}" in a.axes[-1].get_ylabel() and "denoise" in a.axes[-1].get_ylabel()
    # both variants side by side: one scale for both panels
    both = landscape_figure({"flat": flat, "steep": steep})
    assert _levels(both.axes[0]) == _levels(both.axes[1])


def test_every_task_has_a_fixed_colour_scale():
    tasks = {p.stem for p in (ROOT / "configs" / "task").glob("*.yaml")}  # a task's config is named after it
    assert tasks and tasks == set(LOG10_LOSS_RANGE)
    assert all(lo < hi for lo, hi in LOG10_LOSS_RANGE.values())
