"""Benchmark: skipbench's loop against a bare PyTorch loop and Lightning, and the hardware's own conv rate.

One process, the contenders interleaved over ``--rounds`` rounds (so a busy spell hits all of them),
for each model and width; prints (and with ``--out`` writes) a markdown table of median ms/step with
the spread over rounds, and the speed ratios::

    python scripts/bench.py                  # the README table (CPU, 2 models x 2 widths, 3 rounds)
    python scripts/bench.py --quick          # a smoke test in a minute (small, 1 round)
    python scripts/bench.py --device cuda    # on a GPU, plus skipbench's fast path (bf16, channels_last, CUDA graphs)
    python scripts/bench.py --share 1,2      # jobs side by side: 1 x 2 threads vs 2 x 1 thread (or N jobs per GPU)

Contenders (same model, data, batches, noise, memory format and optimizer -- channels_last on CPU and
Adam fused, skipbench's defaults):

  (a) bare        a hand-written loop: batch -> forward -> loss -> backward -> step, no logging at all
  (b) skipbench   skipbench's defaults (scalars and per-layer diagnostics every log_every=20 steps)
  (c) all diag    skipbench writing every diagnostic every step (log_every=1: grad/weight norms,
                  update ratios, first/last ratio; ~200 scalars a step)
  (d) Lightning   Lightning's Trainer, ``grad_norm`` logged every step to TensorBoard (the usual recipe)
  (e) fast        CUDA only: skipbench with bf16 autocast, channels_last, torch.compile reduce-overhead

Each contender runs ``--warmup`` untimed steps first (oneDNN primitive creation, compilation, CUDA graph
capture), then ``--steps`` timed ones; evals are excluded (skipbench's steps/s excludes them, the others
have none). skipbench's time comes from its own ``perf/steps_per_s`` log windows, which count the
cost of logging. Needs ``pip install -e .[bench]`` (Lightning). On a shared machine the numbers mean
little: the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGETS = {"(b)/(a)": 0.98, "(c)/(a)": 0.92, "(c)/(d)": 1.35}  # throughput ratios the issue asks for


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from skipbench.config import config_dir, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Setup:
    """Model, data and batches built as skipbench builds them, for the contenders that are not skipbench."""

    def __init__(self, cfg, device: torch.device) -> None:
        from hydra.utils import instantiate

        from skipbench import seeds
        from skipbench.data import EpochSampler
        from skipbench.train.data_cache import load_data

        self.cfg, self.device = cfg, device
        self.data, self.task = load_data(cfg), instantiate(cfg.task)
        self.task.setup(self.data)
        # skipbench's memory format (channels_last on CPU by default), so the ratios compare loops, not layouts
        cl = cfg.trainer.channels_last
        self.channels_last = device.type == "cpu" if cl is None else bool(cl)
        with seeds.seeded(cfg.seed, "init"):  # the initial weights skipbench's loop starts from
            self.model = instantiate(cfg.model, in_channels=self.data.channels, out_channels=self.task.out_channels,
                                     head=self.task.head).to(device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train = self.data.train.to(device)
        self.sampler = EpochSampler(len(self.train), cfg.trainer.batch_size, cfg.seed, device)
        self.noise = torch.Generator(device)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch skipbench's loop makes at ``step`` (1-based)."""
        from skipbench import seeds

        split = self.train.take(self.sampler.indices(step - 1))
        inputs, target = self.task.make_batch(split, self.noise.manual_seed(seeds.derive(self.cfg.seed, "noise", step)))
        return (inputs.contiguous(memory_format=torch.channels_last) if self.channels_last else inputs), target

    def optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.cfg.optimizer.lr, fused=True)


def bare(cfg, device: torch.device, warmup: int, steps: int) -> float:
    """(a): ms/step of a plain loop."""
    s = Setup(cfg, device)
    model, task, opt = s.model, s.task, s.optimizer(s.model.parameters())
    for step in range(1, warmup + steps + 1):
        if step == warmup + 1:
            sync(device)
            start = time.perf_counter()
        inputs, target = s.batch(step)
        loss = task.loss(model(inputs), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()  # waits for the device
    return 1000 * (time.perf_counter() - start) / steps


def skipbench_loop(cfg, device: torch.device, warmup: int, steps: int) -> float:
    """(b), (c), (e): ms/step over the log windows after ``warmup`` (logging cost included)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from skipbench.run_folder import STEPS_PER_S
    from skipbench.train.loop import train

    with tempfile.TemporaryDirectory() as d:
        train(cfg, Path(d))
        acc = EventAccumulator(d, size_guidance={"scalars": 0})
        acc.Reload()
        rates = [(e.step, e.value) for e in acc.Scalars(STEPS_PER_S)]
    seconds, counted, last = 0.0, 0, 0
    for step, rate in rates:  # each logged rate covers the steps since the previous log
        if last >= warmup:
            seconds += (step - last) / rate
            counted += step - last
        last = step
    return 1000 * seconds / counted


def lightning_loop(cfg, device: torch.device, warmup: int, steps: int) -> float:
    """(d): Lightning's Trainer logging ``grad_norm`` (and the loss) every step to TensorBoard."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities import grad_norm

    s = Setup(cfg, device)
    total = warmup + steps

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = s.model

        def training_step(self, batch, batch_idx):
            inputs, target = batch
            loss = s.task.loss(self.model(inputs), target)
            self.log("train_loss", loss)
            return loss

        def on_before_optimizer_step(self, optimizer) -> None:
            self.log_dict(grad_norm(self, norm_type=2))

        def configure_optimizers(self):
            return s.optimizer(self.parameters())

    class Batches:  # the same batches, made as the other loops make them (no DataLoader copies)
        def __len__(self) -> int:
            return total

        def __iter__(self):
            return (s.batch(step) for step in range(1, total + 1))

    class Clock(L.Callback):
        start = end = None

        def on_train_batch_start(self, trainer, *args) -> None:
            if trainer.global_step == warmup and self.start is None:  # global_step: optimizer steps done
                sync(device)
                self.start = time.perf_counter()

        def on_train_end(self, trainer, module) -> None:
            sync(device)
            self.end = time.perf_counter()

    clock = Clock()
    with tempfile.TemporaryDirectory() as d:
        trainer = L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_steps=total,
                            logger=TensorBoardLogger(d, name="", version=""), log_every_n_steps=1, callbacks=[clock],
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=d)
        trainer.fit(Module(), train_dataloaders=Batches())
    return 1000 * (clock.end - clock.start) / steps


def conv_rate(device: torch.device, batch: int, channels_last: bool, repeats: int = 20) -> float:
    """GFLOP/s of one plain 3x3 conv forward (64 -> 64 channels, 32 x 32), oneDNN's best case here."""
    x = torch.randn(batch, 64, 32, 32, device=device)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device)
    if channels_last:
        x, conv = x.contiguous(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)
    flops = 2 * batch * 64 * 32 * 32 * 64 * 9
    with torch.no_grad():
        for _ in range(3):
            conv(x)
        times = []
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            conv(x)
            sync(device)
            times.append(time.perf_counter() - t)
    return flops / statistics.median(times) / 1e9


def share(counts: list[int], device: torch.device, model: str, width: int, batch: int, steps: int,
          rounds: int) -> str:
    """Summed images/s of N skipbench runs side by side (one process each, as a parallel sweep runs them),
    for each N: how many jobs should share this machine's cores (threads = cores // N) or one GPU."""
    import json
    import subprocess

    from skipbench.run_folder import METRICS

    cores = os.cpu_count() or 1
    rates: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(rounds):
        for n in counts:  # interleaved, like the contenders
            with tempfile.TemporaryDirectory() as d:
                cmd = [sys.executable, "-m", "skipbench.cli", "train", f"model={model}", f"model.width={width}",
                       f"trainer.batch_size={batch}", f"trainer.max_steps={steps}", f"trainer.eval_every={steps}",
                       "trainer.progress=false", f"trainer.device={device.type}",
                       f"trainer.num_threads={max(1, cores // n)}", "dataset.val_size=64"]
                procs = [subprocess.Popen([*cmd, f"hydra.run.dir={d}/{i}"], cwd=d, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL) for i in range(n)]
                if any(p.wait() for p in procs):
                    sys.exit(f"bench.py --share: a run failed: {' '.join(cmd)}")
                rates[n].append(sum(json.loads(Path(d, str(i), METRICS).read_text())["steps_per_s"]
                                    for i in range(n)) * batch)
    base = statistics.median(rates[counts[0]])
    lines = [f"Jobs side by side ({model}, width {width}, batch {batch}, {steps} steps each, {rounds} rounds):", "",
             "| jobs | threads each | images/s, all jobs | per job | vs " + f"{counts[0]} job{'s' * (counts[0] > 1)} |",
             "|---:|---:|---:|---:|---:|"]
    for n in counts:
        med = statistics.median(rates[n])
        lines.append(f"| {n} | {max(1, cores // n)} | {cell(rates[n])} | {med / n:.0f} | {med / base:.2f} |")
    return "\n".join(lines)


def cell(times: list[float]) -> str:
    med = statistics.median(times)
    spread = (max(times) - min(times)) / 2 / med if len(times) > 1 else 0.0
    return f"{med:.1f} ±{spread:.0%}"


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--models", default="unet_concat,resnet")
    p.add_argument("--widths", default="16,32", help="model.width values (the two sizes)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=60, help="timed steps per contender and round")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first (a multiple of 20: a log window)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--contenders", default=None, help="comma list of a,b,c,d,e (default: all for the device)")
    p.add_argument("--quick", action="store_true", help="smoke test: width 4 and 8, 20 steps, 1 round")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    p.add_argument("--share", default=None, help="instead: N runs side by side for each N of this list (e.g. 1,2,4), "
                   "summed images/s -- how many jobs of a sweep should share the cores or one GPU")
    args = p.parse_args()
    if args.quick:
        args.widths, args.steps, args.rounds = "4,8", 20, 1
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench.py: --device cuda, but torch sees no CUDA device here")
    if args.warmup % 20:
        sys.exit("bench.py: --warmup must be a multiple of 20 (skipbench's default log window)")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    if args.share:
        model, width = args.models.split(",")[0], int(args.widths.split(",")[0])
        text = share([int(n) for n in args.share.split(",")], device, model, width, args.batch_size,
                     args.warmup + max(args.steps, 200), args.rounds)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return
    logging.disable(logging.WARNING)  # progress lines of every run would swamp the table
    warnings.filterwarnings("ignore")  # Lightning's advice about workers and log intervals
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    common = ["trainer.progress=false", f"trainer.batch_size={args.batch_size}", f"trainer.device={args.device}",
              f"trainer.num_threads={threads}", "dataset.train_size=2048", "dataset.val_size=64"]

    def config(model: str, width: int, extra: list[str], steps: int):
        total = args.warmup + steps
        return compose([*common, f"trainer.max_steps={total}", f"trainer.eval_every={total}", f"model={model}",
                        f"model.width={width}", *extra])
    contenders: dict[str, tuple[str, list[str], Callable]] = {
        "a": ("(a) bare", [], bare),
        "b": ("(b) skipbench", [], skipbench_loop),
        "c": ("(c) all diag", ["trainer.log_every=1"], skipbench_loop),
        "d": ("(d) Lightning", [], lightning_loop),
    }
    if device.type == "cuda":
        contenders["e"] = ("(e) fast", ["trainer.amp=true", "trainer.channels_last=true", "trainer.compile=true",
                                        "trainer.compile_mode=reduce-overhead"], skipbench_loop)
    chosen = (args.contenders or ",".join(contenders)).split(",")
    contenders = {k: v for k, v in contenders.items() if k in chosen}
    configs = [(m, int(w)) for m in args.models.split(",") for w in args.widths.split(",")]

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    began = time.perf_counter()
    times: dict[tuple, list[float]] = {}
    flops: dict[tuple, int] = {}
    for model, width in configs:
        from skipbench.train.diagnostics import count_flops

        s = Setup(config(model, width, [], args.steps), device)
        flops[model, width] = count_flops(s.model, s.batch(1)[0][:1])
        for key, (_, extra, fn) in contenders.items():  # warm-up pass: imports, primitive caches, compilation
            fn(config(model, width, extra, 20), device, args.warmup, 20)
    for r in range(args.rounds):
        for model, width in configs:
            for key, (label, extra, fn) in contenders.items():
                ms = fn(config(model, width, extra, args.steps), device, args.warmup, args.steps)
                times.setdefault((model, width, key), []).append(ms)
                print(f"round {r + 1}/{args.rounds}  {model:<12} width {width:<3} {label:<14} {ms:8.1f} ms/step",
                      file=sys.stderr, flush=True)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    rates = {cl: conv_rate(device, args.batch_size, cl) for cl in (False, True)}
    lines = [
        f"Device: {machine(device)} ({args.device}, {threads} torch threads), torch {torch.__version__}, "
        f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up, {args.rounds} interleaved "
        f"rounds, {time.perf_counter() - began:.0f} s; load average {load_before:.2f} before, {load_after:.2f} after"
        if load_before is not None else f"Device: {machine(device)}",
        "",
    ]
    labels = [v[0] for v in contenders.values()]
    ratios = [r for r in ("(b)/(a)", "(c)/(a)", "(c)/(d)") if all(k in contenders for k in (r[1], r[5]))]
    if "e" in contenders and "a" in contenders:
        ratios.append("(e)/(a)")
    header = ["model", "width", "GFLOP/step", *[f"{lab} ms/step" for lab in labels], *ratios]
    if "a" in contenders:
        header.append("(a) GFLOP/s")
    rows = []
    ok = True
    for model, width in configs:
        med = {k: statistics.median(times[model, width, k]) for k in contenders}
        step_flops = 3 * flops[model, width] * args.batch_size  # forward + backward ~ 3x forward
        row = [model, str(width), f"{step_flops / 1e9:.2f}", *[cell(times[model, width, k]) for k in contenders]]
        for r in ratios:
            value = med[r[5]] / med[r[1]]  # throughput ratio = inverse of the time ratio
            target = TARGETS.get(r)
            ok &= target is None or value >= target
            row.append(f"{value:.2f}" + ("" if target is None else (" ✓" if value >= target else " ✗")))
        if "a" in contenders:
            row.append(f"{step_flops / med['a'] / 1e6:.0f}")
        rows.append(row)
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", f"Ratios are throughputs (> 1: the first is faster); targets {', '.join(f'{k} ≥ {v}' for k, v in TARGETS.items())}. "
              f"A plain 3×3 conv (64→64 channels, 32×32, batch {args.batch_size}, forward) runs at "
              f"{rates[False]:.0f} GFLOP/s here ({rates[True]:.0f} channels_last): the hardware's rate for this "
              "kind of layer."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if not ok:
        print("bench.py: some ratios miss their targets (✗)", file=sys.stderr)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
