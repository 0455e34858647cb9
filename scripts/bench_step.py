"""Benchmark: what does skipbench's loop cost on top of a bare PyTorch loop?

Times the same model, data and optimizer three ways, on this machine, and prints ms/step:

  bare        a hand-written loop: batch -> forward -> MSE -> backward -> Adam step (no logging at all)
  skipbench   skipbench's loop with every diagnostic off (scalars still logged every log_every steps)
  +diagnostics   skipbench's loop with all diagnostics on (grad/weight norms, update ratios, first/last
              ratio every log_every steps; activation stats and figures only at eval, excluded here)

    python scripts/bench_step.py                       # unet_concat, 200 steps, log_every 20
    python scripts/bench_step.py --model resnet --steps 300 --log-every 1   # worst case: log every step

Eval is excluded (skipbench's train_time_s excludes it; the bare loop has none). Each variant runs
``--repeats`` times interleaved; the median is reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from skipbench.config import config_dir, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def bare(cfg, steps: int) -> float:
    """ms/step of a plain loop over the same batches (the same sampler and noise as skipbench)."""
    from hydra.utils import instantiate

    from skipbench.data import EpochSampler

    torch.manual_seed(cfg.seed)
    data, task = instantiate(cfg.dataset), instantiate(cfg.task)
    task.setup(data)
    model = instantiate(cfg.model, in_channels=data.channels, out_channels=task.out_channels, head=task.head)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optimizer.lr)
    sampler, g = EpochSampler(len(data.train), cfg.trainer.batch_size, cfg.seed), torch.Generator()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        inputs, target = task.make_batch(data.train.take(sampler.indices(step - 1)), g.manual_seed(step))
        loss = torch.nn.functional.mse_loss(model(inputs), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()
    return 1000 * (time.perf_counter() - start) / steps


def skipbench_loop(cfg, steps: int) -> float:
    from skipbench.train.loop import train

    with tempfile.TemporaryDirectory() as d:
        summary = train(cfg, Path(d))
    return 1000 * summary["train_time_s"] / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="unet_concat")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    common = [f"model={args.model}", f"trainer.max_steps={args.steps}", f"trainer.eval_every={args.steps}",
              f"trainer.log_every={args.log_every}", "trainer.progress=false", "dataset.train_size=2048",
              "dataset.val_size=32", "diagnostics.images=false", "diagnostics.grad_flow=false",
              "diagnostics.activations=false"]
    off = [f"diagnostics.{k}=false" for k in ("grad_norms", "weight_norms", "update_ratios")]
    variants = {
        "bare": lambda: bare(compose(common), args.steps),
        "skipbench": lambda: skipbench_loop(compose(common + off), args.steps),
        "+diagnostics": lambda: skipbench_loop(compose(common), args.steps),
    }
    import logging

    logging.disable(logging.INFO)  # the loop's progress lines would swamp the table
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            times[name].append(run())
    base = statistics.median(times["bare"])
    print(f"model={args.model} steps={args.steps} log_every={args.log_every} threads={torch.get_num_threads()} "
          f"torch={torch.__version__}")
    print(f"{'loop':<14}{'ms/step (median)':>18}{'vs bare':>10}   runs")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<14}{med:>18.1f}{med / base - 1:>+10.1%}   {', '.join(f'{t:.1f}' for t in ts)}")


if __name__ == "__main__":
    main()
