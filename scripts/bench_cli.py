"""Benchmark: what the CLI costs around a run (issue 26 item 7, issue 23 item 4).

Times, each as a fresh ``python -m skipbench.cli`` process (what a user waits for):

(a) a no-op resume, ``skipbench train resume=<completed run>``: target about 1 s. It is decided from
    metrics.json and the saved config, without torch (``commands/job.py: completed_as_configured``);
(b) the meta-device model build of the pre-run check (``validate.check_model``), which used to pay torch's
    Python meta kernels (first random op on meta) at every run's start;
(c) ``skipbench report`` of the trained runs with its ``_report`` TensorBoard run and seed bands.

It trains 3 tiny seeds first (~30 s on a busy machine)::

    python scripts/bench_cli.py            # into a temporary folder
    python scripts/bench_cli.py --keep DIR # reuse / keep the runs in DIR

Prints the load average: on a shared machine the numbers mean little.

Measured 2026-12-03 on a busy 2-core machine (load ~6), before -> after this change:
no-op resume 10.9 s -> 1.7 s; meta build of the default U-Net 3.66 s -> 0.06 s (in-process, torch imported).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = ["dataset.train_size=64", "dataset.val_size=16", "model.width=4", "trainer.batch_size=8",
        "trainer.progress=false", "trainer.max_steps=20", "trainer.eval_every=10", "trainer.num_threads=1"]


def timed(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "skipbench.cli", *args], cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, out


def meta_build_s() -> float:
    code = ("import time, torch; from skipbench.models import build_model; t = time.perf_counter()\n"
            "with torch.device('meta'): build_model('unet_concat', width=64, depth=4)\n"
            "print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="folder for the runs (kept; reused when they exist)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_cli_"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    runs = [root / f"seed{s}" for s in range(3)]
    for s, run in enumerate(runs):
        if not (run / "metrics.json").is_file():
            took, out = timed(["train", *TINY, f"seed={s}", f"hydra.run.dir={run}"], root)
            assert out.returncode == 0, out.stderr[-2000:]
            print(f"trained {run.name} in {took:.1f} s")
    times = []
    for _ in range(args.repeat):
        took, out = timed(["train", f"resume={runs[0]}"], root)
        assert out.returncode == 0 and "already completed" in out.stderr, out.stderr[-2000:]
        times.append(took)
    print(f"(a) no-op resume: {min(times):.2f} s best of {args.repeat} (all: {', '.join(f'{t:.2f}' for t in times)})")
    print(f"(b) meta-device build of unet_concat width 64 depth 4: {meta_build_s():.2f} s")
    took, out = timed(["report", str(root), "--out", str(root / "report")], root)
    assert out.returncode == 0, out.stderr[-2000:]
    print(f"(c) report with _report TensorBoard run and bands (3 runs): {took:.2f} s")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
