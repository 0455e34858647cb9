"""``skipbench report DIR``: compare the runs below DIR in one table, three files and three plots.

Writes ``report.md``, ``report.csv``, ``report.json`` (or only ``--format``'s) and ``curves.png``,
``grad_norm_depth.png``, ``grad_flow.png`` into DIR (or ``--out``), the plots and the table also as
the TensorBoard run ``_report/`` there, and prints the table. Mistakes
(missing folder, no runs, unknown key or metric) are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "skipbench report"
FORMATS = ("md", "csv", "json")

EPILOG = """\
Groups: runs are grouped by the config keys that differ between them (never by seed, resume,
trainer.progress, trainer.device or trainer.num_threads), or by --group-by keys: dotted config keys
(model.width, optimizer.lr), the alias model (= model.name), a component (task, optimizer, scheduler,
dataset) or an unambiguous last part (lr = optimizer.lr).

Runs that differ in the task, data set (dataset.*), step budget (trainer.max_steps) or architecture
(model.*) are never pooled: those keys are added to --group-by's. A report compares one task (--task);
probe folders (skipbench probe) are left out.

Runs without metrics.json (still running, or killed) and interrupted runs are left out of the
statistics and counted in one line; diverged and failed runs count as failures of their group.

Examples:
  skipbench report outputs/multirun/2025-01-01_12-00-00
  skipbench report outputs/ --task denoise --group-by model,optimizer.lr --metric val_psnr
  skipbench report outputs/multirun/sweep --target 24 --format csv --out /tmp/report
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def make_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Compare the runs below DIR: one row per group of seeds, plots of "
                "curves and gradient norms.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", metavar="DIR", help="a run folder, a sweep folder or any folder above them (e.g. outputs/)")
    p.add_argument("--metric", default=None,
                   help="metric to compare, as in metrics.json without 'final_' (default: the task's headline, "
                        "val_psnr); higher is better unless the name contains 'loss'")
    p.add_argument("--group-by", default=None, metavar="KEY[,KEY]",
                   help="config keys to group by (default: the keys that differ between runs, seed excluded)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="write only this format and print it (default: write md, csv and json; print md)")
    p.add_argument("--target", type=float, default=None, metavar="VALUE",
                   help="metric value for the steps/time-to-target columns (default: the worst group's mean "
                        "final value, a level every group reaches)")
    p.add_argument("--task", default=None, metavar="NAME",
                   help="only the runs of this task (denoise, reconstruct, segment, classify): a report compares one")
    p.add_argument("--tags", default=None, metavar="TAG[,TAG]",
                   help="only the runs carrying every one of these tags (skipbench train tags=[...])")
    p.add_argument("--out", default=None, metavar="DIR", help="folder for the report files (default: DIR)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser()
    try:
        args = parser.parse_args(args_list)
    except _UsageError as ex:
        print(f"{PROG}: error: {ex} (see {PROG} --help)", file=sys.stderr)
        return 2
    except SystemExit as ex:  # --help
        return int(ex.code or 0)

    from .runs import ReportError

    try:
        return _report(args)
    except ReportError as ex:
        print(f"{PROG}: error: {ex}", file=sys.stderr)
        return 2


def _report(args: argparse.Namespace) -> int:
    """Gather the runs, aggregate them, draw the plots, write the files, print the table."""
    from .aggregate import build_report
    from .render import summary_markdown, write_formats
    from .runs import ReportError, load_runs

    root = Path(args.dir)
    runs = load_runs(root, on_skip=lambda line: print(f"{PROG}: {line}", file=sys.stderr))
    runs = select_runs(runs, root, task=args.task, tags=[t for t in (args.tags or "").split(",") if t.strip()])
    group_by = [k for k in (args.group_by or "").split(",") if k.strip()] or None
    report = build_report(runs, root=str(args.dir), metric=args.metric, group_by=group_by, target=args.target)

    out = Path(args.out) if args.out else root
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise ReportError(f"--out {out}: cannot create it ({ex.strerror or ex})") from None
    plots: list[str] = []
    skipped: list[str] = []
    if not args.no_plots:
        from .plots import write_plots

        written, skipped = write_plots(report, out)
        from .analyses import write_analysis_plots  # runs with lesion.json / landscape.json: their figures

        plots = [p.name for p in written + write_analysis_plots(report, out)]

    files = write_formats(report, out, [args.format] if args.format else list(FORMATS), plots)
    if args.format in (None, "md"):
        print(summary_markdown(report))
    else:
        print((out / f"report.{args.format}").read_text(), end="")
    if plots:
        from .plots import write_tensorboard

        tb_run = write_tensorboard(out, [out / p for p in plots], summary_markdown(report), report)
        from .analyses import write_analysis_tensorboard

        write_analysis_tensorboard(tb_run, report)
        files.append(f"{tb_run.name}/ (TensorBoard run)")
    note = f"; no data for {', '.join(skipped)}" if skipped else ""
    print(f"wrote {', '.join(files + plots)} to {out}{note}", file=sys.stderr)
    return 0


def select_runs(runs: list, root: Path, task: str | None = None, tags: list[str] | None = None) -> list:
    """The runs of ``task`` (all when None) that carry every tag of ``tags``."""
    if task:
        runs = _of_task(runs, task, root)
    if tags:
        from .runs import ReportError

        wanted = {t.strip() for t in tags}
        kept = [r for r in runs if wanted <= run_tags(r)]
        if not kept:
            known = sorted(set().union(*(run_tags(r) for r in runs))) if runs else []
            raise ReportError(f"--tags {','.join(sorted(wanted))}: no run below {root} carries all of them; "
                              f"tags there: {', '.join(known) or '(none)'}")
        runs = kept
    return runs


def run_tags(run) -> set[str]:
    """A run's tags: its config's ``tags`` (metrics.json's for a folder without the key)."""
    tags = run.config.get("tags")
    if tags is None:
        tags = (run.metrics or {}).get("tags") or []
    return {str(t) for t in tags}


def _of_task(runs: list, task: str, root: Path) -> list:
    from .runs import ReportError

    tasks = sorted({str(r.config.get("task")) for r in runs})
    kept = [r for r in runs if str(r.config.get("task")) == task]
    if not kept:
        raise ReportError(f"--task {task}: no runs of that task below {root}; tasks there: {', '.join(tasks)}")
    return kept


if __name__ == "__main__":
    sys.exit(main())
