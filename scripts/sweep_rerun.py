"""What a sweep run again costs when everything in it has finished: the sweep-resume contract's price.

Runs a tiny sweep of ``--jobs`` jobs (``model=autoencoder seed=0..N-1``, 4 steps each) into a fresh
folder, then the same sweep again ``--reruns`` times (every job reused, nothing written) and once as
``resume=<sweep folder>``, and prints the wall seconds of each, through the CLI as a user runs it::

    python scripts/sweep_rerun.py                 # 6 jobs, basic launcher
    python scripts/sweep_rerun.py --jobs 24 --launcher joblib

The re-run's cost is the CLI's start-up (torch, Hydra), composing each job's config and reading each
job folder's ``metrics.json``; no job is built or trained. The verdicts issue needs it under 30 s.
On a shared machine the numbers mean little: the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ["dataset.train_size=64", "dataset.val_size=16", "model.width=4", "trainer.batch_size=8",
        "trainer.progress=false", "trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2",
        "trainer.num_threads=1"]


def cli(args: list[str]) -> tuple[float, str]:
    """Run ``skipbench ARGS``; its wall seconds and its last stderr line (the sweep's summary)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "skipbench.cli", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"skipbench {' '.join(args)} exited {res.returncode}:\n{res.stderr[-2000:]}")
    return wall, res.stderr.strip().splitlines()[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=6)
    p.add_argument("--reruns", type=int, default=2)
    p.add_argument("--launcher", default="basic", choices=["basic", "joblib"])
    opts = p.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "sweep"
        launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if opts.launcher == "joblib" else []
        args = ["train", "-m", "model=autoencoder", f"seed=range(0,{opts.jobs})", *launcher, *TINY,
                f"hydra.sweep.dir={sweep}"]
        wall, line = cli(args)
        print(f"first run, {opts.jobs} jobs trained: {wall:.1f} s  ({line})")
        for i in range(opts.reruns):
            wall, line = cli(args)
            print(f"re-run {i + 1}, everything finished: {wall:.1f} s  ({line})")
        wall, line = cli(["train", f"resume={sweep}"])
        print(f"resume={sweep.name}: {wall:.1f} s  ({line})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
