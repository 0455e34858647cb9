"""``skipbench reproduce [CLAIM ...]``: run each claim's preset (or reuse its finished sweep), add seeds
until the claim is decided, measure, decide, and write ``docs/results.md`` with one table, plot and
verdict per claim.

A claim's sweep lives in ``outputs/claims/<preset>_<hash>/``; the hash covers the preset file and the
skipbench version, so an edited preset runs again and an unchanged one is reused. The seeds are not
the preset's: reproduce sweeps ``seed=0..n-1`` into the same folder, and a sweep grown from 3 to 6
seeds reuses its 3 finished seeds' jobs (the sweep-folder contract, docs/sweeps.md). How many seeds,
and how long the whole call may take, is ``configs/reproduce/default.yaml`` (:mod:`.budget`); the rule
that decides when a claim has seeds enough is :mod:`.sequential`. A sweep is finished at ``n`` seeds
when its folder's ``.done`` says so (written after the sweep exited); an unfinished one is run again,
resuming its jobs. ``docs/results.md`` covers every claim whose sweep is finished, whichever were named.
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
from ..run_folder import (HYDRA_DIR, LANDSCAPE, LESION, METRICS, UnreadableFile, read_json, sweep_params,
                          sweep_task_overrides, write_json)
from .budget import Budget, load_budget
from .claims import CLAIMS, Claim, Measured, known_claims, select_claims
from .sequential import Schedule

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


def preset_seeds(claim: Claim) -> int:
    """How many seeds the preset file itself sweeps (what a ``.done`` written before seeds were grown covers)."""
    from ..run_folder import read_yaml

    params = ((read_yaml(preset_file(claim)) or {}).get("hydra") or {}).get("sweeper", {}).get("params", {}) or {}
    return len(str(params.get("seed", "0")).split(","))


def read_done(folder: Path) -> dict | None:
    """The sweep's ``.done`` record (None when the sweep has not finished once)."""
    try:
        done = read_json(folder / DONE) if (folder / DONE).is_file() else None
    except UnreadableFile:
        return None
    return done if isinstance(done, dict) else None


def seeds_done(claim: Claim, folder: Path) -> int:
    """Seeds the finished sweep in ``folder`` covers (0: none finished)."""
    done = read_done(folder)
    if done is None:
        return 0
    seeds = done.get("seeds")
    return seeds if isinstance(seeds, int) and seeds > 0 else preset_seeds(claim)


def seed_override(seeds: int) -> str:
    return "seed=" + ",".join(str(s) for s in range(seeds))


def run_sweep(claim: Claim, folder: Path, seeds: int) -> float:
    """Run the claim's preset over seeds ``0..seeds-1`` into ``folder`` (its log appended to ``folder.log``),
    reusing every job the folder already finished; returns this call's wall time in seconds."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = folder.with_suffix(".log")
    before = read_done(folder) or {}
    # -m: the preset is a sweep (a single run's pre-check would not apply to it); the seed list on the
    # command line replaces the preset's (Hydra's basic sweeper: the command line wins)
    argv = [sys.executable, "-m", "skipbench.cli", claim.command, "-m", f"experiment={claim.preset}",
            f"hydra.sweep.dir={folder}", seed_override(seeds)]
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(argv[2:])}\n")
        out.flush()
        code = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    # Exit 1 with every job finished: some jobs failed or diverged, which the sweep records (and the
    # claim's table counts); anything else is a sweep that did not finish.
    jobs = [p for p in folder.iterdir() if (p / HYDRA_DIR).is_dir()] if folder.is_dir() else []
    if code != 0 and not (code == 1 and jobs and all((p / METRICS).is_file() for p in jobs)):
        raise ConfigError(f"claim {claim.name}: '{claim.shell} {seed_override(seeds)}' exited with {code}; see {log}")
    load = [round(x, 1) for x in os.getloadavg()[::2]]  # 1- and 15-minute: how shared the cores were
    steps = [*before.get("steps", []), {"seeds": seeds, "wall_s": round(wall, 1), "load": load}]
    total = round(float(before.get("wall_s") or 0.0) + wall, 1)
    write_json(folder / DONE, {"seeds": seeds, "wall_s": total, "command": f"{claim.shell} {seed_override(seeds)}",
                               "exit": code, "load": load, "steps": steps,
                               "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    return wall


def adopt(folder: Path) -> bool:
    """A sweep that finished without its ``.done`` (the reproduce process was stopped while the sweep ran
    on): every job the sweep's ``multirun.yaml`` lists has ``metrics.json``. Writes ``.done`` with the wall
    time the files show (first job folder made -> last ``metrics.json`` written)."""
    params = sweep_params(folder)
    if params is None:
        return False
    for o in sweep_task_overrides(folder):  # the seed list reproduce gave on the command line
        key, _, value = o.partition("=")
        if key in params or key == "seed":
            params[key] = value
    expected = 1
    for value in params.values():
        expected *= len(str(value).split(","))
    jobs = [p for p in folder.iterdir() if (p / HYDRA_DIR).is_dir()]
    done = [p / METRICS for p in jobs if (p / METRICS).is_file()]
    if len(jobs) != expected or len(done) != expected:
        return False
    start = min((p / HYDRA_DIR).stat().st_mtime for p in jobs)
    wall = max(f.stat().st_mtime for f in done) - start
    write_json(folder / DONE, {"seeds": len(str(params.get("seed", "0")).split(",")), "wall_s": round(wall, 1),
                               "adopted": True, "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    return True


def analyze_sweep(claim: Claim, folder: Path) -> int:
    """``skipbench analyze <claim.analyze>`` (with the claim's knobs) on every run of a finished sweep that has a
    checkpoint and no result file yet (an analysis already written is reused: seeds grown analyse only the new
    runs); returns how many were analysed. Runs in this process through the analysis' public API, as the command
    would; the time is added to the sweep's ``.done`` (the claim's time on this machine, and what a seed costs)."""
    if claim.analyze is None:
        return 0
    from ..analyze.run import ANALYSES
    from ..commands.analyze import compose, run_folders

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
    done = read_done(folder)
    if done is not None and isinstance(done.get("wall_s"), (int, float)):
        write_json(folder / DONE, {**done, "analyze_s": round(float(done.get("analyze_s") or 0.0) + took, 1),
                                   "wall_s": round(done["wall_s"] + took, 1)})
    return len(todo)


_MEASURED: dict[tuple[str, int], Measured] = {}  # (sweep folder, seeds): measured once per call


def measure(claim: Claim, folder: Path, schedule: Schedule | None = None) -> Measured:
    from ..report.runs import load_runs

    key = (str(folder), seeds_done(claim, folder))
    if key not in _MEASURED:
        analyze_sweep(claim, folder)  # claims 9, 10: measured on an analysis of each trained run (lesion, landscape)
        _MEASURED[key] = claim.measure(load_runs(folder, probes_only=claim.command == "probe"))
    m = _MEASURED[key]
    if schedule is not None:
        m.schedule = schedule
    return m


def grow(chosen: Sequence[Claim], root: Path, budget: Budget, opts: argparse.Namespace, start: float) -> None:
    """Bring every chosen claim to its first look, then add a step of seeds to each claim still undecided,
    round by round (so no claim spends the budget of the others), until each is decided, at its last
    look, or the next step would end past the wall-clock budget."""
    schedule, say = budget.schedule, (lambda text: print(text, file=sys.stderr, flush=True))
    head = {c.name: f"[{i}/{len(chosen)}] claim {c.number} {c.name}:" for i, c in enumerate(chosen, 1)}
    open_claims = []
    for claim in chosen:
        folder = sweep_dir(claim, root)
        if opts.rerun and folder.exists():
            shutil.rmtree(folder)  # asked for: every seed again
        n = seeds_done(claim, folder) or (seeds_done(claim, folder) if adopt(folder) else 0)
        if n >= schedule.start:
            say(f"{head[claim.name]} reusing {folder} ({n} seeds)")
        elif opts.no_run:
            say(f"{head[claim.name]} not run (--no-run)")
            continue
        else:
            say(f"{head[claim.name]} running '{claim.shell} {seed_override(schedule.start)}' "
                f"(log: {folder.with_suffix('.log')})")
            wall = run_sweep(claim, folder, schedule.start)
            say(f"{head[claim.name]} {schedule.start} seeds in {wall / 60:.1f} min")
        open_claims.append(claim)
    while open_claims and not opts.no_run:
        still = []
        for claim in open_claims:
            folder = sweep_dir(claim, root)
            n, done = seeds_done(claim, folder), read_done(folder) or {}
            decision = measure(claim, folder, schedule).decision
            more = schedule.next_seeds(n)
            if decision.complete or not more:
                say(f"{head[claim.name]} {decision.text}" + ("" if decision.complete else " (last look reached)"))
                continue
            per_seed = float(done.get("wall_s") or 0.0) / max(n, 1)
            left = budget.seconds - (time.perf_counter() - start)
            if per_seed * len(more) > left:
                say(f"{head[claim.name]} {decision.text}; not grown: {len(more)} more seeds would take about "
                    f"{per_seed * len(more) / 60:.1f} min, {max(left, 0) / 60:.1f} min of the "
                    f"{budget.minutes:g}-min budget left")
                continue
            say(f"{head[claim.name]} {decision.text}: adding seeds {more[0]}..{more[-1]}")
            wall = run_sweep(claim, folder, n + len(more))
            say(f"{head[claim.name]} {n + len(more)} seeds in {wall / 60:.1f} min")
            still.append(claim)
        open_claims = still


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


def _looks_text(m: Measured, done: dict) -> str:
    """``seeds: 6 (looks at 3, 6 of 3, 6, 9)``: how many seeds the claim took, and why it stopped there."""
    d, sched = m.decision, m.schedule
    looks = [n for n in sched.looks if n <= d.n]
    why = ("decided" if d.complete else "last look reached" if d.n >= sched.max_seeds
           else "the wall-clock budget ran out before the next look")
    return (f"*Seeds:* {d.n} (looked at {', '.join(map(str, looks)) or '–'} of the planned "
            f"{', '.join(map(str, sched.looks))}; {why})")


def section(claim: Claim, m: Measured, folder: Path, done: dict, png: str) -> str:
    d = m.decision
    lines = [f'<a id="claim-{claim.number}"></a>', "", f"## {claim.number}. {claim.name}: **{d.word}** at n = {d.n}", "",
             f"> {claim.statement}", "", f"*Source:* {claim.source}", "",
             f"*Command:* `skipbench reproduce {claim.name}` — runs `{claim.shell} seed=0,…,{d.n - 1}` "
             f"(preset `configs/experiment/{claim.preset}.yaml`) into `{folder}`"
             + _wall_text(done), "", _looks_text(m, done), "",
             f"*Measured:* {m.quantity}", "",
             "| group | mean ± std | 95 % CI | n |", "|:--|--:|--:|--:|"]
    lines += [f"| {r.label} | {_summary(list(r.values.values()))} |" for r in m.rows]
    if m.extra:
        lines += ["", "| cost | " + " | ".join(next(iter(m.extra.values()))) + " |",
                  "|:--|" + "--:|" * len(next(iter(m.extra.values())))]
        lines += [f"| {k} | " + " | ".join(f"{v:,.4g}" for v in vals.values()) + " |" for k, vals in m.extra.items()]
    lines += ["", f"![claim {claim.number}]({png})", "",
              "*Effects* (B − A over seeds, paired by seed; the interval is the sequential one at the look that decided "
              "the effect, at the error level that look may spend after Holm):", ""]
    decided = iter(d.decided)
    for setting, effects in m.effects.items():
        lines += [f"- {next(decided).text()}" for _ in effects]
        if len(m.effects) > 1:
            lines.append(f"  - → at {setting}: **{m.verdicts[setting]}**")
    if d.word == "undecided":
        lines += ["", f"*Undecided:* {d.text}."]
    lines += ["", f"*Rule:* {m.rule}" + ("; one Holm family over every learning rate" if len(m.effects) > 1 else "")
              + ".", ""]
    if m.note:
        lines += [f"*Note:* {m.note}", ""]
    return "\n".join(lines)


def verdict_table(results: list[tuple[Claim, Measured | None]], link: str = "",
                  previous: dict[int, str] | None = None) -> str:
    """The verdict table; a claim not measured this time keeps its ``previous`` row (if it had a verdict)."""
    lines = ["| # | claim | verdict | n | effect (first named), sequential CI |", "|--:|:--|:--|--:|:--|"]
    for claim, m in results:
        if m is None and claim.number in (previous or {}):
            lines.append(previous[claim.number])
            continue
        if m is None:
            lines.append(f"| {claim.number} | {claim.statement} | not run yet (`skipbench reproduce {claim.name}`) | | |")
            continue
        d = m.decision
        first = d.decided[0] if d.decided else None
        shown = (f"{first.last.name}: {first.last.mean:.3g} [{first.low:.3g}, {first.high:.3g}]" if first else "")
        lines.append(f"| {claim.number} | [{claim.statement}]({link}#claim-{claim.number}) | "
                     f"**{d.word}** | {d.n} | {shown} |")
    return "\n".join(lines)


VERDICT_ROW = r"^(\| (\d+) \| .*?\| \*\*[a-z ]+\*\*[^|]*\|.*)$"  # a verdict-table row with a verdict


def previous_rows(path: Path) -> dict[int, str]:
    """``{claim number: its verdict-table row}`` of the claims with a verdict in ``path`` (a results file or
    a README; empty if none): what a run that does not measure them again keeps."""
    if not path.is_file():
        return {}
    return {int(n): row for row, n in re.findall(VERDICT_ROW, path.read_text(), flags=re.M)}


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
    found = re.findall(r"^\| (\d+) \| .*?\| \*\*([a-z ]+)\*\*[^|]*\|", out.read_text(), flags=re.M)
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


def _schedule_text(results: list) -> str:
    measured = [m for _, m, *_ in results if m is not None]
    if not measured:
        return ""
    sched = measured[0].schedule
    return (f"looks at {', '.join(map(str, sched.looks))} seeds, alpha {sched.alpha:g} per claim, "
            f"{sched.spending.replace('_', '–')} spending")


def _seeds_needed(results: list[tuple[Claim, Measured | None]]) -> list[str]:
    """``Seeds each claim took: 1: 6 (decided), ...``: what the sequential rule needed."""
    parts = []
    for claim, m in results:
        if m is not None:
            d = m.decision
            why = "decided" if d.complete else ("last look" if d.n >= m.schedule.max_seeds else "budget")
            parts.append(f"{claim.number}: {d.n} ({why})")
    return ["Seeds each claim took: " + "; ".join(parts) + "."] if parts else []


def write_results(out: Path, root: Path, results: list[tuple[Claim, Measured | None, Path, dict]],
                  total_s: float) -> None:
    done = [(c, m) for c, m, *_ in results]
    walls = [d["wall_s"] for *_, d in results if d and d.get("wall_s")]
    lines = ["# Results: the literature's claims about skip connections, reproduced", "",
             "Generated by `skipbench reproduce` (do not edit by hand). Each claim is one preset "
             "(`configs/experiment/claim_*.yaml`), run as one sweep on this machine's CPU; its seeds are added in steps "
             f"until the claim is decided ({_schedule_text(results)}; `configs/reproduce/default.yaml`). The verdict "
             "is computed from the numbers by `skipbench/claims/sequential.py`:", "",
             "- an *effect* is a difference between two groups (B − A), paired by seed; at each look (a planned seed "
             "count) it gets a two-sided Student-t p-value: from 0 for a directed effect, from the margin for "
             "\"similar\" (inside the margin: for; outside: the similarity is excluded);",
             "- **seeds until decided, honestly**: looking again after adding seeds would inflate the error rate, so "
             "alpha is *spent* over the looks (Lan–DeMets spending function, Pocock type: look k may use alpha·w_k, "
             "the w_k summing to 1; an effect's sequential p-value is min_k p_k / w_k, valid whenever one stops), and "
             "**Holm** corrects across all effects of one claim (every learning rate of its grid included), so the "
             "chance that any effect of a claim is decided wrongly stays at or below alpha;",
             "- **holds**: every effect decided the claimed way; **does not hold**: some decided against (the effect "
             "points the other way, or the similarity is excluded), none for; **mixed**: some decided each way; "
             "**undecided at n = N**: none against, some still open when the seeds or the wall-clock budget ran out, "
             "with the smallest effect N seeds could have detected (80 % power at the last look's level). Every "
             "verdict shows its n.", "",
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
             f"{total_s / 60:.1f} min (reused sweeps cost nothing).", "",
             *_seeds_needed(done), ""]
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
    rows = {int(n): row for row, n in re.findall(VERDICT_ROW, old, flags=re.M)}
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
    p.add_argument("--config", default=None, metavar="FILE",
                   help="the seeds and wall-clock budget (default: configs/reproduce/default.yaml)")
    p.add_argument("--max-seeds", type=int, default=None, metavar="N", help="seeds a claim may grow to (seeds.max)")
    p.add_argument("--budget-min", type=float, default=None, metavar="MIN",
                   help="wall-clock minutes for the whole call (budget_min); no claim is grown past it")
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
    budget = load_budget(opts.config, opts.max_seeds, opts.budget_min)  # checked before anything runs
    start = time.perf_counter()
    grow(chosen, root, budget, opts, start)
    results = []
    for claim in CLAIMS.values():
        folder = sweep_dir(claim, root)
        done = read_done(folder)
        if done is None:
            results.append((claim, None, folder, {}))
            continue
        m = measure(claim, folder, budget.schedule)
        results.append((claim, m, folder, done))
        print(f"claim {claim.number} {claim.name}: {m.decision.text}", file=sys.stderr, flush=True)
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
