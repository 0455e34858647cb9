"""The report as text: the printed summary, ``report.md``, ``report.csv`` and ``report.json``.

Renders a :class:`~skipbench.report.aggregate.Report` (every number is computed there); this module only
formats: decimals by magnitude, ``n/a`` for what is missing, tables that line up.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

from ..commands.exits import one_line
from ..run_folder import COMPLETED
from .aggregate import Report
from .grouping import format_value, short_key
from .runs import ReportError
from .stats import Summary
from .values import best_value, final_value, finite_number


def _decimals(reference: float | None) -> int:
    """3 decimals for values >= 1 (PSNR 24.318), 3 significant digits below (loss 0.00794)."""
    if reference is None or reference == 0 or not math.isfinite(reference) or abs(reference) >= 1:
        return 3
    return max(3, 2 - math.floor(math.log10(abs(reference))))


def _num(v: float | None, decimals: int) -> str:
    return "n/a" if v is None else f"{v:.{decimals}f}"


def _mean_std(s: Summary, decimals: int) -> str:
    if s.mean is None:
        return "n/a"
    return f"{s.mean:.{decimals}f} ± {_num(s.std, decimals)}"


def _count(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if abs(v - round(v)) < 1e-9 or abs(v) >= 100 else f"{v:,.1f}"


def _to_target(g, values: list, fmt) -> str:
    if not g.steps_to_target:
        return "n/a"
    reached = [v for v in values if v is not None]
    if not reached:
        return "not reached"
    text = fmt(sum(reached) / len(reached))
    total = len(g.steps_to_target)
    return text if len(g.reached) == total else f"{text} ({len(g.reached)}/{total} reached)"


def _cell(v: Any) -> str:
    return format_value(v).replace("|", "\\|")


def _target_text(report: Report) -> str:
    if report.target is None:
        return "none"
    op = "≥" if report.higher_is_better else "≤"
    return f"{op} {report.target:.{_decimals(report.target)}f}"


def _status_line(report: Report) -> str:
    finished = report.finished
    done = sum(r.status == COMPLETED for r in finished)
    failed = len(finished) - done
    parts = [f"{len(report.runs)} runs found: {done} completed, {failed} failed or diverged"]
    skipped = []
    if report.incomplete:
        skipped.append(f"{len(report.incomplete)} incomplete (no metrics.json: still running or killed)")
    if report.interrupted:
        skipped.append(f"{len(report.interrupted)} interrupted (resume with `skipbench train resume=RUN_DIR`)")
    line = parts[0] + f"; {len(report.groups)} group{'s' if len(report.groups) != 1 else ''}."
    if skipped:
        line += " Not in the statistics: " + ", ".join(skipped) + "."
    return line


def group_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    m = report.metric
    dec = _decimals(next((g.final.mean for g in report.groups if g.final.mean is not None), None))
    tgt = _target_text(report)
    header = [short_key(k) for k in report.shown_keys] or ["group"]
    header += ["n", "failed", f"final {m} (mean ± std)", "95% CI ±", f"best {m} (mean ± std)",
               f"steps to {tgt}", f"train s to {tgt}", "params", "steps/s", "peak MB", "act. MB"]
    rows = []
    for g in report.groups:
        keys = [_cell(g.labels[k]) for k in report.shown_keys] or ["all runs"]
        rows.append(keys + [
            str(g.final.n), str(g.failed), _mean_std(g.final, dec), _num(g.final.ci95, dec), _mean_std(g.best, dec),
            _to_target(g, g.steps_to_target, _count), _to_target(g, g.seconds_to_target, lambda v: f"{v:.1f}"),
            _count(g.params), _num(g.steps_per_s, 1), _num(g.peak_memory_mb, 0), _num(g.activations_mb, 1),
        ])
    return header, rows


def _resolution(report: Report) -> str:
    """Steps to target are known only at evaluations: say how coarse that is."""
    every = sorted({int(v) for r in report.finished if isinstance(v := r.config.get("trainer.eval_every"), int)})
    if not every:
        return ""
    return f" (resolution: one evaluation every {' / '.join(map(str, every))} steps, trainer.eval_every)"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    numeric = [i >= len(header) - 11 for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if num else (":" + "-" * (w + 1)) for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def summary_markdown(report: Report) -> str:
    """What is printed: status line, metric and target, the group table, its footnotes."""
    m, better = report.metric, "higher" if report.higher_is_better else "lower"
    target = ("given with --target" if report.target_source == "given"
              else "default: the worst group's mean final value, a level every group reaches on average")
    lines = [
        _status_line(report),
        f"Metric: {m} ({better} is better), final and best value per run; target {report.metric} "
        f"{_target_text(report)} ({target}).",
    ]
    if report.split_keys:
        lines.append(f"Note: also split by {', '.join(report.split_keys)}: runs of another task, data set, step budget "
                     "or architecture are never pooled.")
    if report.pooled_keys:
        lines.append(f"Note: groups pool runs that differ in {', '.join(report.pooled_keys)}.")
    header, rows = group_rows(report)
    lines += ["", markdown_table(header, rows), "",
              "n: completed runs in the statistics; failed: diverged or failed runs of the group. std: sample std "
              "(n-1); 95% CI: Student-t half-width (n ≥ 3). Steps / train seconds to target: first logged "
              f"evaluation at the target, mean over the runs that reach it{_resolution(report)}; train seconds "
              "exclude evaluation. steps/s: steps / train seconds, over all sessions of a run. peak MB: the peak "
              "memory of each run's process (CUDA: the allocator's peak; CPU: peak RSS, which in an in-process "
              "sweep includes the jobs before it)."]
    return "\n".join(lines)


def run_rows(report: Report) -> list[dict[str, Any]]:
    """One row per run found: its status, its metric, its steps to the target (from the report)."""
    rows = []
    for run in report.runs:
        m = run.metrics or {}
        g = report.group_of(run)
        step, secs = report.to_target.get(run.name, (None, None))
        rows.append({
            "run": run.name, "group": g.label if g else None, "status": run.status,
            "seed": run.config.get("seed", m.get("seed")),
            f"final_{report.metric}": final_value(run, report.metric) if run.status == COMPLETED else None,
            f"best_{report.metric}": best_value(run, report.metric) if run.status == COMPLETED else None,
            "steps_to_target": step, "train_s_to_target": secs,
            # metrics.json may come from anywhere: a number that is not one (a string, 10**400) is n/a
            **{k: finite_number(m.get(k)) for k in ("steps", "max_steps", "params", "train_time_s", "wall_time_s",
                                                    "steps_per_s", "peak_memory_mb", "activations_mb")},
            "peak_memory_kind": _text(m.get("peak_memory_kind")),
            "error": _text(m.get("error")) or run.problem,
        })
    return rows


def _text(v: Any) -> str | None:
    return None if v is None else one_line(v if isinstance(v, str) else repr(v), 300)


def render_markdown(report: Report, plots: Sequence[str]) -> str:
    parts = [f"# skipbench report: {report.root}", "", summary_markdown(report)]
    if plots:
        parts += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    rows = run_rows(report)
    metric = report.metric
    header = ["run", "group", "status", "seed", f"final {metric}", f"best {metric}", "steps to target", "steps"]
    table = []
    for r in rows:
        dec = _decimals(r[f"final_{metric}"])
        table.append([_cell(r["run"]), _cell(r["group"] or "—"), r["status"] + (f": {r['error']}" if r["error"] else ""),
                      _cell(r["seed"]), _num(r[f"final_{metric}"], dec), _num(r[f"best_{metric}"], dec),
                      "not reached" if r["run"] in report.to_target and r["steps_to_target"] is None
                      else _count(r["steps_to_target"]), _count(r["steps"])])
    parts += ["", "## Runs", "", _plain_table(header, [[c.replace("\n", " ") for c in row] for row in table])]
    return "\n".join(parts) + "\n"


def _plain_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
                      *("| " + " | ".join(r) + " |" for r in rows)])


def render_csv(report: Report) -> str:
    m = report.metric
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    keys = [short_key(k) for k in report.shown_keys]
    w.writerow(["group", *keys, "n", "failed", f"{m}_mean", f"{m}_std", f"{m}_ci95", f"best_{m}_mean", f"best_{m}_std",
                "target", "steps_to_target_mean", "runs_reached", "runs_with_curve", "train_s_to_target_mean",
                "params", "steps_per_s", "peak_memory_mb", "activations_mb"])
    for g in report.groups:
        w.writerow([g.label, *(_csv(g.labels[k]) for k in report.shown_keys), g.final.n, g.failed,
                    *(_csv(v) for v in (g.final.mean, g.final.std, g.final.ci95, g.best.mean, g.best.std, report.target,
                                        g.mean_steps_to_target)),
                    len(g.reached), len(g.steps_to_target),
                    *(_csv(v) for v in (g.mean_seconds_to_target, g.params, g.steps_per_s, g.peak_memory_mb, g.activations_mb))])
    return buf.getvalue()


def _csv(v: Any) -> Any:
    if v is None:
        return ""
    return format_value(v) if isinstance(v, tuple) else v


def _clean(v: Any) -> Any:
    """JSON-safe: tuples -> lists, NaN/inf -> null (strict JSON has neither)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def render_json(report: Report, plots: Sequence[str]) -> str:
    groups = []
    for g in report.groups:
        groups.append({
            "group": g.label, "keys": {short_key(k): g.labels[k] for k in report.shown_keys},
            "config": {k: g.runs[0].config.get(k) for k in report.group_keys},
            "n": g.final.n, "runs": len(g.runs), "failed": g.failed,
            f"final_{report.metric}": g.final.as_dict(), f"best_{report.metric}": g.best.as_dict(),
            "steps_to_target": {"mean": g.mean_steps_to_target, "reached": len(g.reached),
                                "runs": len(g.steps_to_target), "values": g.steps_to_target},
            "train_s_to_target": {"mean": g.mean_seconds_to_target, "values": g.seconds_to_target},
            "params": g.params, "steps_per_s": g.steps_per_s, "peak_memory_mb": g.peak_memory_mb,
            "activations_mb": g.activations_mb, "run_names": [r.name for r in g.runs],
        })
    doc = {
        "root": report.root, "metric": report.metric, "higher_is_better": report.higher_is_better,
        "target": report.target, "target_source": report.target_source, "group_keys": report.group_keys,
        "shown_keys": report.shown_keys, "pooled_keys": report.pooled_keys, "split_keys": report.split_keys,
        "counts": {"runs": len(report.runs), "finished": len(report.finished), "incomplete": len(report.incomplete),
                   "interrupted": len(report.interrupted),
                   "failed": sum(r.failed for r in report.runs)},
        "incomplete": [r.name for r in report.incomplete], "interrupted": [r.name for r in report.interrupted],
        "groups": groups, "runs": run_rows(report), "plots": list(plots),
    }
    return json.dumps(_clean(doc), indent=2) + "\n"


def write_formats(report: Report, out: Path, formats: Sequence[str], plots: Sequence[str]) -> list[str]:
    """Write ``report.<fmt>`` into ``out`` for each format (``md``, ``csv``, ``json``); returns the file names."""
    rendered = {
        "md": lambda: render_markdown(report, plots),
        "csv": lambda: render_csv(report),
        "json": lambda: render_json(report, plots),
    }
    files = []
    for fmt in formats:
        path = out / f"report.{fmt}"
        try:
            path.write_text(rendered[fmt]())
        except OSError as ex:
            raise ReportError(f"{path}: cannot write it ({ex.strerror or ex})") from None
        files.append(path.name)
    return files
