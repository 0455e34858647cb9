"""ms per training step (forward + backward + Adam) of the block knobs of issue 22 against the existing
blocks, contenders interleaved over ``--rounds`` rounds in one process (a busy spell hits them all)::

    python scripts/bench_blocks.py               # conv variants (classify, 32 px) and the 100-layer MLPs on digits
    python scripts/bench_blocks.py --rounds 1 --steps 10

Prints median ms/step and the spread over rounds; for the MLPs also the forward GFLOPs per sample and
the achieved GFLOP/s (a step costs ~3x the forward), to check a deep MLP step costs what its FLOPs say.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skipbench.models import build_model  # noqa: E402
from skipbench.train.diagnostics import count_flops  # noqa: E402

CONV = {  # label -> build_model kwargs (depth 2, width 16, 2 blocks per level)
    "resnet (BN)": dict(name="resnet"),
    "preact_resnet": dict(name="preact_resnet"),
    "resnet norm=group": dict(name="resnet", norm="group"),
    "resnet_nonorm": dict(name="resnet_nonorm"),
    "rezero_resnet": dict(name="rezero_resnet"),
    "fixup_resnet": dict(name="fixup_resnet"),
    "resnet shortcut=gated": dict(name="resnet", shortcut="gated"),
    "resnet shortcut=conv1x1": dict(name="resnet", shortcut="conv1x1"),
    "resnet drop_path=0.5": dict(name="resnet", drop_path=0.5),
    "highway": dict(name="highway"),
}
MLP = {f"{n} 100 layers": dict(name=n) for n in ("mlp_plain", "mlp_residual", "mlp_highway", "mlp_dense")}


def step_fn(kw: dict, mlp: bool, batch: int):
    torch.manual_seed(0)
    if mlp:
        model = build_model(**kw, num_layers=100, width=32, input_size=8, out_channels=10)
        x = torch.rand(batch, 1, 8, 8)
    else:
        model = build_model(**kw, depth=2, width=16, blocks_per_level=2, head="classes", out_channels=4)
        x = torch.rand(batch, 1, 32, 32)
    y = torch.randint(0, 10 if mlp else 4, (batch,))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    flops = count_flops(model, x[:1])

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return step, flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    contenders = {k: (*step_fn(v, False, a.batch_size), False) for k, v in CONV.items()}
    contenders.update({k: (*step_fn(v, True, a.batch_size), True) for k, v in MLP.items()})
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(a.rounds):
        for name, (step, _, _) in contenders.items():
            for _ in range(3):
                step()  # warm-up
            t0 = time.perf_counter()
            for _ in range(a.steps):
                step()
            times[name].append((time.perf_counter() - t0) / a.steps * 1e3)
    print(f"batch {a.batch_size}, {a.threads} thread(s), {a.rounds} rounds x {a.steps} steps")
    print("| contender | ms/step (median) | spread | fwd GFLOP/sample | GFLOP/s (3x fwd) |\n|---|---|---|---|---|")
    for name, ts in times.items():
        _, flops, _ = contenders[name]
        ms = statistics.median(ts)
        rate = 3 * flops * a.batch_size / (ms / 1e3) / 1e9
        print(f"| {name} | {ms:.2f} | {min(ts):.2f}-{max(ts):.2f} | {flops / 1e9:.2e} | {rate:.2f} |")


if __name__ == "__main__":
    main()
