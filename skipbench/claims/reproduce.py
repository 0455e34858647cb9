"""``skipbench reproduce [CLAIM ...]``: run each claim's preset (or reuse its finished sweep), measure,
decide, and write ``docs/results.md`` with one table, plot and verdict per claim.

A claim's sweep lives in ``outputs/claims/<preset>_<hash>/``; the hash covers the preset file and the
skipbench version, so an edited preset runs again and an unchanged one is reused. A sweep is finished
when its folder holds ``.done`` (written after the sweep exited 0); an unfinished one is run again
from scratch. ``docs/results.md`` covers every claim whose sweep is finished, whichever were named.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from ..config import config_dir
from ..errors import ConfigError
from ..run_folder import HYDRA_DIR, LANDSCAPE, LESION, METRICS, UnreadableFile, read_json, sweep_params
from .claims import CLAIMS, Claim, Measured, known_claims, select_claims

DONE = ".done"
PROG = "skipbench reproduce"


def project_root() -> Path | None:
    """The skipbench checkout this package lives in (the folder holding ``pyproject.toml`` of project
    ``skipbench`` next to this ``skipbench/`` package), or None for an installed package: the results and
    the README verdicts belong to that checkout, never to the folder the command happens to run in."""
    package = Path(__file__).resolve().parents[1]
    root = package.parent
    try:
        meta = (root / "pyproject.toml").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    named = re.search(r'^name\s*=\s*"skipbench"\s*$', meta, flags=re.M)
    return root if named and (root / "docs").is_dir() and (root / "configs").is_dir() else None


def preset_file(claim: Claim) -> Path:
    return config_dir() / "experiment" / f"{claim.preset}.yaml"


def sweep_dir(claim: Claim, root: Path) -> Path:
    """``<root>/<preset>_<hash of the preset file and skipbench version>``."""
    from .. import __version__

    digest = hashlib.sha1(preset_file(claim).read_bytes() + __version__.encode()).hexdigest()[:8]
    return root / f"{claim.preset}_{digest}"


def run_sweep(claim: Claim, folder: Path) -> float:
    """Run the claim's preset into ``folder`` (its log in ``folder.log``); returns the wall time in seconds."""
    if folder.exists():
        shutil.rmtree(folder)  # an unfinished sweep: start again, a half sweep is no sweep
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = folder.with_suffix(".log")
    # -m: the preset is a sweep (a single run's pre-check would not apply to it)
    argv = [sys.executable, "-m", "skipbench.cli", claim.command, "-m", f"experiment={claim.preset}",
            f"hydra.sweep.dir={folder}"]
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    # Exit 1 with every job finished: some jobs failed or diverged, which the sweep records (and the
    # claim's table counts); anything else is a sweep that did not finish.
    jobs = [p for p in folder.iterdir() if (p / HYDRA_DIR).is_dir()] if folder.is_dir() else []
    if code != 0 and not (code == 1 and jobs and all((p / METRICS).is_file() for p in jobs)):
        raise ConfigError(f"claim {claim.name}: '{claim.shell}' exited with {code}; see {log}")
    load = [round(x, 1) for x in os.getloadavg()[::2]]  # 1- and 15-minute: how shared the cores were
    (folder / DONE).write_text(json.dumps({"wall_s": round(wall, 1), "command": claim.shell, "exit": code, "load": load,
                                           "finished": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return wall


def adopt(folder: Path) -> bool:
    """A sweep that finished without its ``.done`` (the reproduce process was stopped while the sweep ran
    on): every job the sweep's ``multirun.yaml`` lists has ``metrics.json``. Writes ``.done`` with the wall
    time the files show (first job folder made -> last ``metrics.json`` written)."""
    params = sweep_params(folder)
    if params is None:
        return False
    expected = 1
    for value in params.values():
        expected *= len(str(value).split(","))
    jobs = [p for p in folder.iterdir() if (p / HYDRA_DIR).is_dir()]
    done = [p / METRICS for p in jobs if (p / METRICS).is_file()]
    if len(jobs) != expected or len(done) != expected:
        return False
    start = min((p / HYDRA_DIR).stat().st_mtime for p in jobs)
    wall = max(f.stat().st_mtime for f in done) - start
    (folder / DONE).write_text(json.dumps({"wall_s": round(wall, 1), "adopted": True,
                                           "finished": time.strftime("%Y-%m-%d %H:%M:%S")}))
    return True


def analyze_sweep(claim: Claim, folder: Path) -> int:
    """``skipbench analyze <claim.analyze>`` (with the claim's knobs) on every run of a finished sweep that has a
    checkpoint and no result file yet (an analysis already written is reused); returns how many were analysed.
    Runs in this process through the analysis' public API, as the command would."""
    if claim.analyze is None:
        return 0
    from ..commands.analyze import compose, run_folders
    from ..analyze.run import ANALYSES

    name = {"lesion": LESION, "landscape": LANDSCAPE}[claim.analyze]
    todo = [p for p in run_folders(folder, sweep=True) if not (p / name).is_file()]
    if not todo:
        return 0
    cfg = compose(claim.analyze, list(claim.analyze_args))
    start = time.perf_counter()
    for i, run in enumerate(todo, 1):
        ANALYSES[claim.analyze](run, cfg)
        print(f"  analyze {claim.analyze} [{i}/{len(todo)}] {run.name}", file=sys.stderr, flush=True)
    took = time.perf_counter() - start
    print(f"  {len(todo)} {claim.analyze} analyses in {took / 60:.1f} min", file=sys.stderr, flush=True)
    try:  # the claim's time on this machine is the sweep's and its analyses'
        done = read_json(folder / DONE)
    except UnreadableFile:
        done = None
    if isinstance(done, dict) and isinstance(done.get("wall_s"), (int, float)):
        done["analyze_s"] = round(done.get("analyze_s", 0) + took, 1)
        done["wall_s"] = round(done["wall_s"] + took, 1)
        (folder / DONE).write_text(json.dumps(done))
    return len(todo)


def measure(claim: Claim, folder: Path) -> Measured:
    from ..report.runs import load_runs

    return claim.measure(load_runs(folder))


# ---------------------------------------------------------------- writing
def _summary(values: Sequence[float]) -> str:
    from ..report.aggregate import Summary

    s = Summary.of(values)
    if s.mean is None:
        return "– | – | 0"
    fmt = lambda x: f"{x:.4g}"  # noqa: E731
    std = fmt(s.std) if s.std is not None else "–"
    ci = f"[{fmt(s.mean - s.ci95)}, {fmt(s.mean + s.ci95)}]" if s.ci95 is not None else "–"
    return f"{fmt(s.mean)} ± {std} | {ci} | {s.n}"


def plot(claim: Claim, m: Measured, path: Path) -> None:
    """Each group's per-seed values (dots) and mean with its 95 % CI (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report.aggregate import Summary

    width = max(4.0, 1.1 * len(m.rows) + 1.5)
    if m.profiles:
        fig, (ax, prof) = plt.subplots(1, 2, figsize=(width + 5.0, 3.4), dpi=110)
        for label, values in m.profiles.items():
            prof.plot(range(len(values)), values, marker=".", label=label)
        prof.set_xlabel("main-path conv, input → output", fontsize=8)
        prof.set_ylabel(m.profile_axis, fontsize=8)
        prof.legend(fontsize=7)
        prof.grid(alpha=0.3)
    else:
        fig, ax = plt.subplots(figsize=(width, 3.4), dpi=110)
    for i, row in enumerate(m.rows):
        s = Summary.of(row.values.values())
        ax.scatter([i] * len(row.values), list(row.values.values()), s=14, color="0.55", zorder=2)
        if s.mean is not None:
            ax.errorbar([i], [s.mean], yerr=[s.ci95 or 0.0], fmt="o", color="C0", capsize=5, zorder=3)
    ax.set_xticks(range(len(m.rows)))
    ax.set_xticklabels([r.label.replace(", ", "\n") for r in m.rows], fontsize=7)
    ax.set_ylabel(m.axis or m.quantity, fontsize=8)
    ax.set_title(f"Claim {claim.number} ({claim.name}): {m.verdict}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _wall_text(done: dict) -> str:
    if not done.get("wall_s"):
        return ""
    load = done.get("load")
    return f"; {done['wall_s'] / 60:.1f} min on this machine" + (
        f" (load average {load[0]:g} / {load[1]:g} over 1 / 15 min when it ended)" if load else " (load not recorded)")


def section(claim: Claim, m: Measured, folder: Path, done: dict, png: str) -> str:
    lines = [f'<a id="claim-{claim.number}"></a>', "", f"## {claim.number}. {claim.name}: **{m.verdict}**", "",
             f"> {claim.statement}", "", f"*Source:* {claim.source}", "",
             f"*Command:* `skipbench reproduce {claim.name}` — runs `{claim.shell}` "
             f"(preset `configs/experiment/{claim.preset}.yaml`) into `{folder}`"
             + _wall_text(done), "",
             f"*Measured:* {m.quantity}", "",
             "| group | mean ± std | 95 % CI | n |", "|:--|--:|--:|--:|"]
    lines += [f"| {r.label} | {_summary(list(r.values.values()))} |" for r in m.rows]
    if m.extra:
        lines += ["", "| cost | " + " | ".join(next(iter(m.extra.values()))) + " |",
                  "|:--|" + "--:|" * len(next(iter(m.extra.values())))]
        lines += [f"| {k} | " + " | ".join(f"{v:,.4g}" for v in vals.values()) + " |" for k, vals in m.extra.items()]
    lines += ["", f"![claim {claim.number}]({png})", "", "*Effects* (B − A over seeds, paired by seed; ± = 95 % CI half-width):", ""]
    for setting, effects in m.effects.items():
        lines += [f"- {e.text()}" for e in effects]
        if len(m.effects) > 1:
            lines.append(f"  - → at {setting}: **{m.verdicts[setting]}**")
    lines += ["", f"*Rule:* {m.rule}" + ("; the verdict is the weakest over the learning rates" if len(m.effects) > 1 else "")
              + ".", ""]
    if m.note:
        lines += [f"*Note:* {m.note}", ""]
    return "\n".join(lines)


def verdict_table(results: list[tuple[Claim, Measured | None]], link: str = "",
                  previous: dict[int, str] | None = None) -> str:
    """The verdict table; a claim not measured this time keeps its ``previous`` row (if it had a verdict)."""
    lines = ["| # | claim | verdict | effect (first named) |", "|--:|:--|:--|:--|"]
    for claim, m in results:
        if m is None and claim.number in (previous or {}):
            lines.append(previous[claim.number])
            continue
        if m is None:
            lines.append(f"| {claim.number} | {claim.statement} | not run yet (`skipbench reproduce {claim.name}`) | |")
            continue
        e = next(iter(m.effects.values()))[0]
        ci = f" ± {e.ci:.3g}" if e.ci is not None else ""
        lines.append(f"| {claim.number} | [{claim.statement}]({link}#claim-{claim.number}) | "
                     f"**{m.verdict}** | {e.name}: {e.mean:.3g}{ci} |")
    return "\n".join(lines)


def previous_rows(path: Path) -> dict[int, str]:
    """``{claim number: its verdict-table row}`` of the claims with a verdict in ``path`` (a results file or
    a README; empty if none): what a run that does not measure them again keeps."""
    if not path.is_file():
        return {}
    return {int(n): row for row, n in re.findall(r"^(\| (\d+) \| .*?\| \*\*[a-z ]+\*\* \|.*)$",
                                                path.read_text(), flags=re.M)}


def previous_sections(out: Path) -> dict[int, str]:
    """``{claim number: its section}`` of the claims with a verdict in a results file written earlier."""
    if not out.is_file():
        return {}
    parts = re.split(r'^(?=<a id="claim-\d+"></a>$)', out.read_text(), flags=re.M)
    found = {}
    for part in parts[1:]:
        m = re.match(r'<a id="claim-(\d+)"></a>\s*## \d+\. \S+: \*\*[a-z ]+\*\*', part)
        if m:
            found[int(m[1])] = part.rstrip("\n") + "\n"
    return found


def previous_verdicts(out: Path) -> dict[int, str]:
    """``{claim number: verdict}`` from the verdict table of a results file written earlier (empty if none)."""
    if not out.is_file():
        return {}
    found = re.findall(r"^\| (\d+) \| .*?\| \*\*([a-z ]+)\*\* \|", out.read_text(), flags=re.M)
    return {int(n): v for n, v in found}


def verdict_changes(out: Path, results: list[tuple[Claim, Measured | None]]) -> list[str]:
    """Lines naming each verdict that differs from the results file being replaced."""
    before = previous_verdicts(out)
    if not before:
        return []
    changed = [f"claim {c.number} ({c.name}): {before[c.number]} → {m.verdict}" for c, m in results
               if m is not None and c.number in before and before[c.number] != m.verdict]
    return [("Verdicts changed since the previous `docs/results.md`: " + "; ".join(changed) + "."
             if changed else "No verdict changed since the previous `docs/results.md`."), ""]


def write_results(out: Path, root: Path, results: list[tuple[Claim, Measured | None, Path, dict]],
                  total_s: float) -> None:
    done = [(c, m) for c, m, *_ in results]
    walls = [d["wall_s"] for *_, d in results if d and d.get("wall_s")]
    lines = ["# Results: the literature's claims about skip connections, reproduced", "",
             "Generated by `skipbench reproduce` (do not edit by hand). Each claim is one preset "
             "(`configs/experiment/claim_*.yaml`), run as one sweep on this machine's CPU over 3 seeds; the verdict is "
             "computed from the numbers by `skipbench/claims/verdict.py`:", "",
             "- an *effect* is a difference between two groups (B − A), paired by seed, with a 95 % Student-t CI over "
             "the seeds; it *supports* the claim when the CI lies on the claimed side of 0 (for \"similar\": inside "
             "the stated margin), it *leans* when only its mean does;",
             "- **holds**: every effect the claim names supports it; **partly holds**: every effect leans the claimed way, "
             "or some (not all) support it; **does not hold**: otherwise. Where a learning-rate grid was run, the verdict "
             "is the weakest over it.", "",
             "Learning rates (Adam): claims 1, 7 and 8 run lr 1e-3, 3e-3 and 1e-2, a grid spanning the per-variant tuned "
             "lrs of `configs/tuned/denoise_shapes.yaml` (0.0079–0.0094, tuned at the default width 16, so not reused "
             "as such at these presets' width 8); claims 2, 4 and 5 run 1e-3 and 3e-3 (no tuned lr exists for these "
             "tasks and depths); claims 3 and 6 are measured at initialisation, where the lr plays no part; claims 9–13 run "
             "Adam's default lr 1e-3 only (their sweeps are the largest; issue 22 sized them to 20 min together). A verdict "
             "must hold at every lr of its grid. Settings are changed only in the presets, and every verdict that "
             "changed from the previous `docs/results.md` is listed under the table.", "",
             verdict_table(done, previous=previous_rows(out)), "", *verdict_changes(out, done),
             "Wall times are what each sweep took when it ran, on whatever else the machine was doing (each "
             "section gives the load average then; on 2 cores a load of 2 is a fully busy machine).", "",
             f"Sweep wall time (2 CPU cores, as recorded when each sweep ran): "
             f"{sum(walls) / 60:.1f} min for {len(walls)} sweep(s); this `skipbench reproduce` call took "
             f"{total_s / 60:.1f} min (reused sweeps cost nothing).", ""]
    kept = previous_sections(out)
    for claim, m, folder, done in results:
        if m is None and claim.number in kept:
            lines.append(kept[claim.number])  # measured earlier, not this time: what was measured stays
            continue
        if m is None:
            lines += [f"## {claim.number}. {claim.name}: not run yet", "", f"> {claim.statement}", "",
                      f"Run `skipbench reproduce {claim.name}` ({claim.shell}).", ""]
            continue
        png = f"results/claim{claim.number}_{claim.name}.png"
        plot(claim, m, out.parent / png)
        lines.append(section(claim, m, _shown(folder), done, png))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


README_START, README_END = "<!-- verdicts:start -->", "<!-- verdicts:end -->"


def update_readme(readme: Path, out: Path, results: list[tuple[Claim, Measured | None]]) -> bool:
    """Put the verdict table between the README's markers (a README without them is left alone)."""
    if not readme.is_file():
        return False
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    import os

    link = os.path.relpath(out, readme.parent)
    head, rest = text.split(README_START, 1)
    old, tail = rest.split(README_END, 1)
    rows = {int(n): row for row, n in re.findall(r"^(\| (\d+) \| .*?\| \*\*[a-z ]+\*\* \|.*)$", old, flags=re.M)}
    readme.write_text(f"{head}{README_START}\n{verdict_table(results, link, rows)}\n{README_END}{tail}")
    return True


# ---------------------------------------------------------------- command
def make_parser() -> argparse.ArgumentParser:
    from ..report.cli import _Parser

    p = _Parser(prog=PROG, description="Run the literature's claims about skips (or reuse finished sweeps) and "
                "write docs/results.md with a verdict computed from the numbers for each.",
                epilog="claims: " + ", ".join(f"{c.number}={c.name}" for c in CLAIMS.values()))
    p.add_argument("claims", nargs="*", metavar="CLAIM", help="claim names or numbers (default: all of them)")
    p.add_argument("--out", default=None, help="the results file (plots go to its folder's results/; default: "
                   "docs/results.md of the skipbench checkout this package belongs to)")
    p.add_argument("--root", default=None, help="where the claims' sweeps live (and are reused from; default: "
                   "outputs/claims of the checkout, else of the current folder)")
    p.add_argument("--readme", default=None,
                   help="a README with <!-- verdicts:start/end --> markers gets the verdict table (default: the "
                        "checkout's README.md when the results go to its docs/results.md; none with --out)")
    p.add_argument("--rerun", action="store_true", help="run the named claims' sweeps again even if finished")
    p.add_argument("--no-run", action="store_true", help="only write the results of sweeps already finished")
    return p


def main(args: list[str]) -> int:
    from ..report.cli import _UsageError

    try:
        opts = make_parser().parse_args(args)
    except _UsageError as ex:
        raise ConfigError(str(ex)) from None
    chosen = select_claims(opts.claims)  # before anything runs: a typo costs nothing
    out, readme = results_paths(opts)
    project = project_root()
    root = Path(opts.root) if opts.root else (project or Path()) / "outputs" / "claims"
    start = time.perf_counter()
    for i, claim in enumerate(chosen, 1):
        folder = sweep_dir(claim, root)
        head = f"[{i}/{len(chosen)}] claim {claim.number} {claim.name}:"
        if not opts.rerun and ((folder / DONE).is_file() or adopt(folder)):
            print(f"{head} reusing {folder}", file=sys.stderr, flush=True)
        elif opts.no_run:
            print(f"{head} not run (--no-run)", file=sys.stderr, flush=True)
        else:
            print(f"{head} running '{claim.shell}' (log: {folder.with_suffix('.log')})", file=sys.stderr, flush=True)
            wall = run_sweep(claim, folder)
            print(f"{head} sweep done in {wall / 60:.1f} min", file=sys.stderr, flush=True)
        if not opts.no_run and (folder / DONE).is_file():
            analyze_sweep(claim, folder)  # claims measured on an analysis of the trained runs (lesion, landscape)
    results = []
    for claim in CLAIMS.values():
        folder = sweep_dir(claim, root)
        if not (folder / DONE).is_file():
            results.append((claim, None, folder, {}))
            continue
        try:
            done = read_json(folder / DONE)
        except UnreadableFile:
            done = None
        m = measure(claim, folder)
        results.append((claim, m, folder, done if isinstance(done, dict) else {}))
        print(f"claim {claim.number} {claim.name}: {m.verdict}", file=sys.stderr, flush=True)
    if all(m is None for _, m, *_ in results):  # nothing measured: nothing to write, and nothing is erased
        print(f"nothing measured (no finished sweep under {root}); {out} left as it is", file=sys.stderr)
        return 0
    write_results(out, root, results, time.perf_counter() - start)
    print(f"wrote {out}", file=sys.stderr)
    if readme is not None and update_readme(readme, out, [(c, m) for c, m, *_ in results]):
        print(f"updated the verdict table in {readme}", file=sys.stderr)
    return 0


def _shown(folder: Path) -> Path:
    """A sweep folder as the results file names it: relative to the checkout when inside it."""
    project = project_root()
    try:
        return folder.resolve().relative_to(project) if project else folder
    except ValueError:
        return folder


def results_paths(opts: argparse.Namespace) -> tuple[Path, Path | None]:
    """The results file and the README to update: those the user names, else the checkout's own
    ``docs/results.md`` and ``README.md`` -- never a file of whatever folder the command runs in."""
    project = project_root()
    if opts.out is None and project is None:
        raise ConfigError(f"this skipbench is installed, not a checkout ({Path(__file__).resolve().parents[1]}); "
                          "name the results file with --out (and a README to update with --readme)")
    out = Path(opts.out) if opts.out is not None else project / "docs" / "results.md"
    if opts.readme is not None:
        return out, Path(opts.readme)
    return out, (project / "README.md" if opts.out is None else None)
