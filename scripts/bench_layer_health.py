"""Cost of the per-layer health and cost diagnostics (issue 25), on a width-16 depth-3 U-Net, CPU:

* GradNorms per log step without / with ``grad_max`` (fused abs + max over the layer weights);
* the per-layer cost table (two forwards of one sample: saved-tensor hooks, FlopCounterMode), once per run;
* one training step, for scale.

    PYTHONPATH=. python scripts/bench_layer_health.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from skipbench.models import build_model
from skipbench.train.diagnostics import GradNorms
from skipbench.train.layer_table import layer_table


def best_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model("unet_concat", width=16, depth=3, in_channels=1, out_channels=1)
    x = torch.rand(32, 1, 32, 32)
    opt = torch.optim.Adam(model.parameters())

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        opt.step()

    step_ms = best_ms(step, max(3, args.repeats // 4))
    plain, with_max = GradNorms(model), GradNorms(model, grad_max=True)
    a = best_ms(plain, args.repeats)
    b = best_ms(with_max, args.repeats)
    table = best_ms(lambda: layer_table(model, x[:1]), max(3, args.repeats // 4))
    print(f"training step (batch 32): {step_ms:.1f} ms")
    print(f"grad norms per log step: {a:.3f} ms; with grad_max: {b:.3f} ms (+{b - a:.3f} ms, "
          f"{100 * (b - a) / step_ms:.2f} % of a step, paid every log_every steps)")
    print(f"per-layer cost table (once per run): {table:.1f} ms")


if __name__ == "__main__":
    main()
