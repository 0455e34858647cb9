"""Throughput of the papers' own networks: images/s, ms/step and peak memory per architecture and batch size.

Each case trains its network for ``--steps`` timed SGD steps (after ``--warmup`` untimed ones) on random
inputs of the paper's size, and reports images/s, the model's FLOPs (forward, from torch's counter; a
training step is taken as 3x), the rate that makes and, with ``--peak-tflops``, its fraction of the
device's dense rate (the physical limit)::

    python scripts/bench_papers.py                               # every network, device=auto
    python scripts/bench_papers.py --device cpu --batch 2 --steps 2 --models resnet20,red30
    python scripts/bench_papers.py --device cuda --batch 128,256 --amp --channels-last --compile \\
        --peak-tflops 989                                        # an H100/H200's dense bf16 rate

Cases (the paper's input size): resnet20 / resnet56 / resnet110 / plain56 (CIFAR 3 x 32 x 32),
densenet_bc (L=100, k=12; 32 px), unet2015 (1 x 572 x 572 -> 2 x 388 x 388), red30 / red30_noskip
(1 x 50 x 50 patches). On a shared machine the numbers mean little: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skipbench.models import build_model  # noqa: E402
from skipbench.train.diagnostics import count_flops  # noqa: E402
from skipbench.train.memory import peak_mb, reset_peak  # noqa: E402

# name -> (variant, its kwargs, input [C, H, W], classes or None for an image output)
CASES: dict[str, tuple[str, dict, tuple[int, int, int], int | None]] = {
    "resnet20": ("cifar_resnet", {"n": 3}, (3, 32, 32), 10),
    "resnet56": ("cifar_resnet", {"n": 9}, (3, 32, 32), 10),
    "resnet110": ("cifar_resnet", {"n": 18}, (3, 32, 32), 10),
    "plain56": ("cifar_plain", {"n": 9}, (3, 32, 32), 10),
    "densenet_bc": ("densenet_bc", {"L": 100, "k": 12}, (3, 32, 32), 10),
    "unet2015": ("unet2015", {}, (1, 572, 572), 2),
    "red30": ("rednet", {"depth": 30}, (1, 50, 50), None),
    "red30_noskip": ("rednet", {"depth": 30, "long_skip": "none"}, (1, 50, 50), None),
}


def build(case: str, device: torch.device, channels_last: bool) -> tuple[torch.nn.Module, tuple, int | None]:
    name, kw, shape, classes = CASES[case]
    pixels = name in ("unet2015", "rednet")
    out = classes if classes else shape[0]
    model = build_model(name, in_channels=shape[0], out_channels=out, head="pixels" if pixels else "classes", **kw)
    fmt = torch.channels_last if channels_last else torch.preserve_format
    return model.to(device, memory_format=fmt), shape, classes


def loss_of(case: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if CASES[case][0] == "unet2015":  # per-pixel classes on the 388 x 388 output
        return F.cross_entropy(output.float(), target)
    if CASES[case][3] is None:
        return F.mse_loss(output.float(), target)
    return F.cross_entropy(output.float(), target)


def bench(case: str, batch: int, args, device: torch.device) -> dict:
    model, shape, classes = build(case, device, args.channels_last)
    flops = count_flops(model, torch.randn(1, *shape, device=device))
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(batch, *shape, generator=g).to(device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out_shape = model(x[:1]).shape
    if CASES[case][0] == "unet2015":
        target = torch.randint(0, classes, (batch, *out_shape[-2:]), generator=g).to(device)
    elif classes is None:
        target = torch.rand(batch, *out_shape[1:], generator=g).to(device)
    else:
        target = torch.randint(0, classes, (batch,), generator=g).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    forward = torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else "default") if args.compile else model
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp else nullcontext
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = forward(x)
        loss_of(case, out, target).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    sync()
    reset_peak(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    mem, kind = peak_mb(device)
    img_s = batch / seconds
    tflops = 3 * flops * img_s / 1e12  # forward + backward (~2x forward)
    row = {"case": case, "batch": batch, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
           "gflops_per_img": flops / 1e9, "ms_per_step": 1e3 * seconds, "img_per_s": img_s, "tflop_s": tflops,
           "peak_mb": mem, "mem_kind": kind}
    if args.peak_tflops:
        row["of_peak"] = tflops / args.peak_tflops
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--models", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    p.add_argument("--batch", default="128", help="comma-separated batch sizes")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile (reduce-overhead = CUDA graphs on CUDA)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense rate, for the fraction of peak")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    cases = [c.strip() for c in args.models.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown model {unknown[0]!r}; known: {', '.join(CASES)}")
    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        p.error(f"--batch={args.batch}: comma-separated positive integers")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device=cuda: no CUDA device is available here; use auto or cpu")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}; "
          f"amp={args.amp} channels_last={args.channels_last} compile={args.compile}")
    cols = ["case", "batch", "params_M", "gflops_per_img", "ms_per_step", "img_per_s", "tflop_s", "peak_mb"]
    cols += ["of_peak"] if args.peak_tflops else []
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for case in cases:
        for b in batches:
            row = bench(case, b, args, device)
            cells = [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in cols]
            print("| " + " | ".join(cells) + " |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
