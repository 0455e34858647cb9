"""``skipbench tb [DIR]``: TensorBoard over DIR with run names that lead with what differs, and the
links that open it on the views that tell the story.

TensorBoard names a run by its path below ``--logdir`` (``multirun/2026-12-03_06-10-00.118204/denoise_...``)
and cuts long names short, so every card and HParams trial reads ``multirun/2026-1...``. With
``--logdir_spec NAME:PATH,...`` each run is shown as ``NAME/...``: here ``<task> <model> [swept values]``,
the sweep's time only where two runs would share a name.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import quote

from ..run_folder import EXCLUDED_KEYS, GRAD_LEVEL
from .runs import ReportError, Run, discover_runs, load_run

PROG = "skipbench tb"
# What the links open: (what, TensorBoard tag filter)
VIEWS = [("loss", "^loss/"), ("metrics", "^metric/"), ("gradients by level", f"^{GRAD_LEVEL}/")]


def _overrides(run: Run) -> dict[str, str]:
    """This run's overrides that can tell runs apart (``seed`` included, model and task named apart)."""
    out = {}
    for item in run.overrides:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if key in ("model", "task") or key.startswith("hydra") or key in EXCLUDED_KEYS and key != "seed":
            continue
        out[key] = value
    return out


def run_label(run: Run, shown: set[str] | None = None) -> str:
    """``denoise unet_concat lr=0.01 seed=1``: task, variant, then this run's values of the ``shown`` keys
    (all its overrides when None; the seed last), without what ``--logdir_spec`` cannot carry (``,`` ``:``)."""
    task = str(run.config.get("task", "?"))
    model = str(run.config.get("model.name", "?"))
    values = {k: v for k, v in _overrides(run).items() if shown is None or k in shown}
    seed = values.pop("seed", None)
    parts = [task, model, *(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items())]
    label = " ".join(parts + ([f"seed={seed}"] if seed is not None else []))
    return re.sub(r"[,:\s]+", " ", label).strip()


def named_runs(root: Path) -> list[tuple[str, Path]]:
    """``(name, folder)`` of every run below ``root``; a name shared by two runs gets its folder's parent
    (the sweep's time) appended."""
    runs = [load_run(p, root) for p in discover_runs(root)]
    each = [_overrides(r) for r in runs]
    keys = {k for o in each for k in o}
    shown = {k for k in keys if len({o.get(k) for o in each}) > 1}  # what differs between the runs
    labels = [run_label(r, shown) for r in runs]
    out = []
    for run, label in zip(runs, labels):
        if labels.count(label) > 1:
            label = f"{label} ({run.path.parent.name})"
        out.append((label, run.path))
    return out


def links(port: int, host: str = "localhost") -> list[tuple[str, str]]:
    base = f"http://{host}:{port}/"
    return ([(what, f"{base}?tagFilter={quote(regex)}#timeseries") for what, regex in VIEWS]
            + [("skip comparison charts", f"{base}#custom_scalars"), ("hyperparameters", f"{base}#hparams")])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=PROG, description="Print the TensorBoard command for the runs below DIR "
                                "(run names that lead with task, variant and swept values) and links to its views.")
    p.add_argument("dir", nargs="?", default="outputs", metavar="DIR")
    p.add_argument("--port", type=int, default=6006)
    args = p.parse_args(argv)
    root = Path(args.dir)
    if not root.is_dir():
        raise ReportError(f"{root}: no such directory")
    runs = named_runs(root)
    if not runs:
        raise ReportError(f"{root}: no runs found (a run folder holds .hydra/config.yaml)")
    spec = ",".join(f"{name}:{path.resolve()}" for name, path in runs)
    print(f"# {len(runs)} runs below {root}; run names lead with task, variant and swept values")
    print(f"tensorboard --port {args.port} --logdir_spec {shlex.quote(spec)}")
    for what, url in links(args.port):
        print(f"# {what}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
