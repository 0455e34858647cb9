"""The papers' tables next to what skipbench measures: the parameter conformance table, and, given the folder
of a ``he2016_cifar10[_small]`` or ``rednet_depth[_small]`` sweep, the paper's figures beside the measured
direction and its verdict (skipbench/claims/papers.py)::

    python scripts/paper_checks.py                                   # the conformance table only
    python scripts/paper_checks.py outputs/multirun/he2016_cifar10_small_<time>
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skipbench.claims.papers import check_for, conformance  # noqa: E402
from skipbench.errors import ReportError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", nargs="?", help="a sweep folder of one of the paper presets")
    args = p.parse_args(argv)
    print("| network | paper | measured | source |\n|---|---|---|---|")
    for label, paper, got, source in conformance():
        print(f"| {label} | {paper} | {got:,} ({got / 1e6:.3g} M) | {source} |")
    if not args.sweep:
        return 0
    from skipbench.report.runs import load_runs

    try:
        runs = load_runs(Path(args.sweep))
        check = check_for(runs)
    except ReportError as ex:
        print(f"paper_checks: error: {ex}", file=sys.stderr)
        return 2
    m = check.measure(runs)
    print(f"\n{check.name} ({check.source})\npaper: {check.paper}\nmeasured: {m.quantity}")
    for row in m.rows:
        vals = ", ".join(f"seed {s}: {v:.4g}" for s, v in sorted(row.values.items())) or "no completed run"
        mean = f" (mean {statistics.mean(row.values.values()):.4g})" if row.values else ""
        print(f"  {row.label}: {vals}{mean}")
    for e in m.effects[""]:
        print(f"  {e.text()}")
    print(f"verdict (direction): {m.verdict}; rule: {m.rule}" + (f"; {m.note}" if m.note else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
