"""The report's view of ``skipbench analyze``: every variant's lesion curve on ONE axis and every variant's
landscape contour side by side on the task's fixed colour scale, for the runs that carry ``lesion.json`` /
``landscape.json``.

* ``lesion_curves.png``: per group, the headline metric vs k blocks deleted: the mean over its seeds of
  each run's mean over draws, band = min-max over the seeds (over one run's draws when it has one seed);
* ``landscape_contours.png``: per group, the 2-d slice of its lowest-seed run (directions are random per
  run, so slices are not averaged), on :data:`skipbench.analyze.run.LOG10_LOSS_RANGE` of the task;
* ``_report/lesion/<group>/``: one TensorBoard run per group with its mean curve as ``lesion/metric_vs_k``
  (step k), so one Time Series card overlays every variant (and each run's own ``analysis/lesion`` curve).

The PNGs also reach the ``_report`` run's Images tab through :func:`skipbench.report.plots.write_tensorboard`.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from ..run_folder import EVENTS_PREFIX, LANDSCAPE, LESION, LESION_K, LESION_K_LOSS, REPORT_LESION_RUNS
from .aggregate import Report

LESION_PNG = "lesion_curves.png"
LANDSCAPE_PNG = "landscape_contours.png"
DPI = 110


def _read(path: Path) -> dict[str, Any] | None:
    """A finished analysis' JSON, None when absent, unreadable or not completed."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("status") == "completed" else None


def group_lesions(report: Report) -> dict[str, dict[str, Any]]:
    """Group label -> a ``lesion.json``-shaped curve pooled over the group's runs that have one: ``baseline``
    and per-k ``mean`` are the means over seeds, the per-k metric list holds each seed's mean (the band)."""
    out = {}
    for g in report.groups:
        found = [r for r in (_read(run.path / LESION) for run in g.completed) if r and r.get("k")]
        if not found:
            continue
        metric = found[0]["metric"]
        ks = min(len(r["k"]) for r in found)  # the same architecture: the same k range, but be safe
        if len(found) == 1:
            pooled = found[0]
        else:
            curve = []
            for i in range(ks):
                means = [r["k"][i]["mean"] for r in found]
                curve.append({"k": found[0]["k"][i]["k"], metric: means, "mean": statistics.mean(means),
                              "loss_mean": statistics.mean(r["k"][i]["loss_mean"] for r in found)})
            pooled = {"metric": metric, "k": curve,
                      "baseline": {metric: statistics.mean(r["baseline"][metric] for r in found),
                                   "loss": statistics.mean(r["baseline"]["loss"] for r in found)}}
        out[f"{g.label} (n={len(found)})"] = pooled
    return out


def group_landscapes(report: Report) -> dict[str, dict[str, Any]]:
    """Group label -> the ``landscape.json`` of its lowest-seed run that has one."""
    out = {}
    for g in report.groups:
        runs = sorted(g.completed, key=lambda r: (r.config.get("seed") is None, r.config.get("seed") or 0))
        for run in runs:
            if (r := _read(run.path / LANDSCAPE)) is not None and r.get("grid"):
                out[f"{g.label} (seed {run.config.get('seed')})"] = r
                break
    return out


def analysis_figures(report: Report) -> dict[str, Any]:
    """File name -> figure: the lesion curves and the landscape contours, each only when some group has data."""
    from ..analyze.run import landscape_figure, lesion_figure

    figures = {}
    lesions = group_lesions(report)
    if lesions:
        fig = lesion_figure(lesions, next(iter(lesions.values()))["metric"])
        fig.axes[0].set_title("lesions (Veit et al. 2016): every variant, band = min-max over seeds", fontsize=9)
        figures[LESION_PNG] = fig
    scapes = group_landscapes(report)
    if scapes:
        figures[LANDSCAPE_PNG] = landscape_figure(scapes)
    return figures


def write_analysis_plots(report: Report, out_dir: Path) -> list[Path]:
    """``lesion_curves.png`` and ``landscape_contours.png`` in ``out_dir`` when some runs carry the JSONs."""
    written = []
    for name, fig in analysis_figures(report).items():
        fig.savefig(Path(out_dir) / name, dpi=DPI)
        written.append(Path(out_dir) / name)
    return written


def _folder_name(label: str) -> str:
    """A group label as one folder name (no slashes, no spaces, no seed count): ``model=plain``."""
    label = re.sub(r" \(n=\d+\)$", "", label)
    return re.sub(r"[^A-Za-z0-9=.,_+-]+", "_", label).strip("_") or "group"


def write_analysis_tensorboard(report_run: Path, report: Report) -> list[Path]:
    """``<_report>/lesion/<group>/``: each group's pooled curve by k (earlier event files there replaced)."""
    from ..train.tb import TBLogger

    written = []
    root = Path(report_run) / REPORT_LESION_RUNS
    for old in root.glob(f"*/{EVENTS_PREFIX}.*"):  # a report run again replaces its curves
        old.unlink()
    for label, r in group_lesions(report).items():
        folder = root / _folder_name(label)
        folder.mkdir(parents=True, exist_ok=True)
        tb = TBLogger(folder)
        try:
            metric = r["metric"]
            tb.scalars({LESION_K: r["baseline"][metric], LESION_K_LOSS: r["baseline"]["loss"]}, 0)
            for c in r["k"]:
                tb.scalars({LESION_K: c["mean"], LESION_K_LOSS: c["loss_mean"]}, c["k"])
        finally:
            tb.close(finished=False)
        written.append(folder)
    return written
