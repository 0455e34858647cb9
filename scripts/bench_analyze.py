"""Benchmark: ``skipbench analyze`` on the default model (issue 21, item 6).

Times (a) the default 21x21 filter-normalised landscape slice (plus its 21-point line) of the default
model on its fixed evaluation batch, and the rest of ``analyze landscape`` (interpolation, Hessian
extremes); (b) a full single-block lesion sweep (every block, then every long skip, alone) on the whole validation split. Targets on 2 idle CPU
cores: (a) < 60 s, (b) < 20 s. The model is freshly built from the default config (a checkpoint's
weights cost the same to evaluate), so no training is needed::

    python scripts/bench_analyze.py                    # defaults: 2 threads, the default knobs
    python scripts/bench_analyze.py --quick            # a smoke test: a 5x5 slice
    python scripts/bench_analyze.py model=resnet       # any train override picks another model

Prints the load average before and after: on a shared machine the numbers mean little.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any, Callable

import torch


def rss_mb() -> float:
    """This process's resident memory now (Linux /proc), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss(fn: Callable[[], Any], every: float = 0.005) -> tuple[Any, float]:
    """``fn()`` and the peak of resident memory above its start while it ran (MB, sampled every 5 ms):
    torch's allocations are invisible to tracemalloc, and ru_maxrss never comes down for a second case."""
    base, peak, done = rss_mb(), [0.0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb() - base)
            time.sleep(every)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        out = fn()
    finally:
        done.set()
        t.join()
    return out, max(peak[0], rss_mb() - base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a 5x5 slice, no interpolation or Hessian")
    ap.add_argument("overrides", nargs="*", help="train overrides (model=resnet) and analyze knobs (landscape.grid=11)")
    args = ap.parse_args()

    from omegaconf import OmegaConf

    from skipbench.analyze import lesion as L
    from skipbench.analyze.run import landscape_study, scorer
    from skipbench.commands.analyze import compose
    from skipbench.config import compose_config
    from skipbench.train.loop import build

    knobs = [o for o in args.overrides if o.split("=")[0].split(".")[0] in ("lesion", "landscape")]
    train = [o for o in args.overrides if o not in knobs]
    if args.quick:
        knobs += ["landscape.grid=5", "landscape.interpolate=false", "landscape.hessian_iters=0"]
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}; torch threads {torch.get_num_threads()}")
    cfg = compose("landscape", knobs + ["progress=false"])
    run = build(compose_config(train + [f"trainer.num_threads={args.threads}"]))
    run.model.eval()
    params = sum(p.numel() for p in run.model.parameters())
    print(f"model {run.cfg.model.name} width {run.cfg.model.width}: {params} parameters; "
          f"knobs {OmegaConf.to_container(cfg.landscape)}")

    start = time.perf_counter()
    out, peak = peak_rss(lambda: landscape_study(run, cfg, initial=run.model.state_dict()))
    total = time.perf_counter() - start
    g = cfg.landscape.grid
    print(f"landscape: peak resident memory +{peak:.0f} MB over the start ({g}x{g} grid, "
          f"landscape.chunk={cfg.landscape.chunk} points at a time)")
    print(f"landscape: {g}x{g} slice + {g}-point line on {out['batch']} images: {out['grid_seconds']:.1f} s "
          f"({1000 * out['seconds_per_point']:.1f} ms/point; target < 60 s); whole analysis {total:.1f} s "
          f"(interpolation {'on' if 'interpolation' in out else 'off'}, Hessian iters {cfg.landscape.hessian_iters})")

    score = scorer(run, cfg.lesion.val_size, cfg.lesion.batch_size)
    start = time.perf_counter()
    base = score(run.model)
    one = time.perf_counter() - start
    start = time.perf_counter()
    done, refused = L.single_lesions(run.model, score)
    long = L.long_skip_lesions(run.model, score)
    sweep = time.perf_counter() - start
    print(f"lesion: single-block sweep, {len(done)} blocks deleted ({len(refused)} not deletable) and {len(long)} "
          f"long skips dropped, each alone, on {len(run.data.val)} val images: {sweep:.1f} s "
          f"(one evaluation {one:.2f} s; target < 20 s)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
