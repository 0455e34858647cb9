"""The training loop: one for every variant and task.

``train(cfg, run_dir)`` builds everything from the config, then runs the phases
data -> forward -> backward -> diagnostics -> step -> log -> eval -> checkpoint. Batches and noise
are pure functions of ``(seed, step)``, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..config import ConfigError, check_config
from ..data import EpochSampler, Split
from ..tasks import Task
from .checkpoint import CHECKPOINT, find_checkpoint, load_checkpoint, save_checkpoint, write_json
from .diagnostics import Diagnostics, count_flops
from .tb import TBLogger, flatten

log = logging.getLogger("skipbench")
VAL_NOISE_SEED = 12345  # every eval of every run scores the same noisy validation inputs


def resolve_device(name: str) -> torch.device:
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only, never on norm weights or biases (all 1-d)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


@torch.no_grad()
def evaluate(model, task: Task, val: Split, batch_size: int, autocast) -> tuple[dict[str, float], tuple]:
    """Mean loss and metrics over the whole split; also returns the first batch for the image grid."""
    model.eval()
    g = torch.Generator(val.images.device).manual_seed(VAL_NOISE_SEED)
    sums: dict[str, torch.Tensor] = {}
    first = None
    for start in range(0, len(val), batch_size):
        inputs, target = task.make_batch(val.take(slice(start, start + batch_size)), g)
        with autocast():
            output = model(inputs)
        n = inputs.shape[0]
        values = {"loss": task.loss(output, target) * n, **{k: v.sum() for k, v in task.metrics(inputs, output, target).items()}}
        for k, v in values.items():
            sums[k] = sums.get(k, 0) + v.float()
        first = first or (inputs, output, target)
    model.train()
    return {k: v.item() / len(val) for k, v in sums.items()}, first


class StopFlag:
    """First Ctrl-C (or SIGTERM) asks the loop to stop after the current step; a second one aborts."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._old = {}

    def __enter__(self) -> "StopFlag":
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (some launchers): keep default handlers
            pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.reason is not None:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name
        log.warning("%s received: stopping after this step and saving a checkpoint (again to abort)", self.reason)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one run into ``run_dir``; returns the summary also written to ``metrics.json``."""
    wall_start = time.perf_counter()
    check_config(cfg)
    t, run_dir = cfg.trainer, Path(run_dir)
    device = resolve_device(t.device)
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    torch.manual_seed(cfg.seed)
    state = load_checkpoint(find_checkpoint(cfg.resume), device) if cfg.resume else None

    # ---- build: data, task, model, optimizer, schedule
    data = instantiate(cfg.dataset)
    task: Task = instantiate(cfg.task)
    model = instantiate(cfg.model, in_channels=data.channels, out_channels=task.out_channels(data.channels), head=task.head)
    model = model.to(device, memory_format=torch.channels_last if t.channels_last else torch.preserve_format)
    n_params = sum(p.numel() for p in model.parameters())
    flops = count_flops(model, data.val.images[:1].to(device))
    try:
        optimizer = instantiate(cfg.optimizer)(param_groups(model, cfg.optimizer.weight_decay))
    except ValueError as ex:  # torch's own argument checks, e.g. "Invalid beta parameter at index 0: 2.0"
        raise ConfigError(f"optimizer: {ex}") from None
    scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=t.max_steps)
    start, best, best_step, train_time = 0, -math.inf, 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best, best_step, train_time = state["step"], state["best"], state["best_step"], state["train_time"]
        log.info("resumed from %s at step %d", cfg.resume, start)

    use_amp = t.amp and device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext
    forward = torch.compile(model) if t.compile else model
    train_split, val_split = data.train.to(device), data.val.to(device)
    sampler = EpochSampler(len(train_split), t.batch_size, cfg.seed)
    noise = torch.Generator(device)
    diag = Diagnostics(model, cfg.diagnostics)
    tb = TBLogger(run_dir, purge_step=start + 1 if start else None)
    choices = cfg_choices()
    hparams = {**flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)), **choices,
               "params": n_params, "flops_per_sample": flops}
    metric_tag = f"metric/val_{task.metric}"
    tb.hparams(hparams, [metric_tag, f"metric/best_val_{task.metric}", "loss/val", "loss/train"])
    log.info("model %s (long_skip=%s, block=%s): %s parameters, %.3g GFLOPs/sample | task %s | data %s %s | device %s",
             cfg.model.name, cfg.model.long_skip, cfg.model.block, f"{n_params:,}", flops / 1e9, task.name,
             data.name, tuple(train_split.images.shape[1:]), device)
    log.info("run folder: %s", run_dir)
    if start == 0:
        tb.scalars({"model/params": n_params, "model/flops_per_sample": flops}, 0)
        tb.layout(diag.layout())

    def checkpoint(step: int) -> None:
        save_checkpoint(run_dir / CHECKPOINT, {
            "step": step, "best": best, "best_step": best_step, "train_time": train_time,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        })

    loss_sum, loss_n, last = torch.zeros((), device=device), 0, {}
    window_start, window_steps, status, step = time.perf_counter(), 0, "completed", start
    # Off a terminal (sweeps, cluster logs) refresh rarely, so log files do not fill with bars.
    bar = tqdm(total=t.max_steps, initial=start, disable=not t.progress, desc=cfg.model.name, unit="step",
               dynamic_ncols=True, mininterval=0.2 if sys.stderr.isatty() else 30)
    with StopFlag() as stop, logging_redirect_tqdm():
        for step in range(start + 1, t.max_steps + 1):  # `step` = optimizer steps done after this one
            # ---- data: the batch and its noise depend only on (seed, step)
            inputs, target = task.make_batch(train_split.take(sampler.indices(step - 1)), noise.manual_seed(cfg.seed * 1_000_003 + step))
            if t.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            # ---- forward
            with autocast():
                output = forward(inputs)
            loss = task.loss(output, target)
            # ---- backward
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # ---- diagnostics: gradients as they are before the optimizer touches them
            log_now = step % t.log_every == 0 or step == t.max_steps
            diag.after_backward(log_now)
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            # ---- step (diagnostics around it measure the update)
            lr = optimizer.param_groups[0]["lr"]
            diag.before_step(log_now)
            optimizer.step()
            diag.after_step(log_now)
            scheduler.step()
            loss_sum += loss.detach()
            loss_n += 1
            window_steps += 1
            bar.update(1)
            # ---- log (the only host syncs of the hot path, every log_every steps)
            if log_now:
                elapsed = time.perf_counter() - window_start
                train_time += elapsed
                train_loss = loss_sum.item() / loss_n
                scalars = {"loss/train": train_loss, "lr": lr, "perf/steps_per_s": window_steps / elapsed,
                           "perf/images_per_s": window_steps * t.batch_size / elapsed, **diag.scalars(step)}
                tb.scalars(scalars, step)
                bar.set_postfix(loss=f"{train_loss:.4g}", refresh=False)
                last["train_loss"] = train_loss
                loss_sum.zero_()
                loss_n = window_steps = 0
                if not math.isfinite(train_loss):
                    status = "diverged"
                    log.error("training loss is %s at step %d: stopping this run as diverged", train_loss, step)
                    break
                window_start = time.perf_counter()
            # ---- eval and checkpoint
            if step % t.eval_every == 0 or step == t.max_steps:
                eval_start = time.perf_counter()
                train_time += eval_start - window_start
                vals, sample = evaluate(forward, task, val_split, t.batch_size, autocast)
                if vals[task.metric] > best:
                    best, best_step = vals[task.metric], step
                tb.scalars({"loss/val": vals["loss"], f"metric/best_val_{task.metric}": best,
                            **{f"metric/val_{k}": v for k, v in vals.items() if k != "loss"}}, step)
                tb.scalars(diag.activations(sample[0]), step)
                tb.figures(diag.figures(), step)
                if cfg.diagnostics.images:
                    n = cfg.diagnostics.num_images
                    tb.images("samples/val", [x[:n] for x in task.sample_rows(*sample)], step)
                last.update({f"val_{k}": v for k, v in vals.items()})
                log.info("step %d/%d  train loss %.4g  val loss %.4g  val %s %.3f", step, t.max_steps,
                         last.get("train_loss", float("nan")), vals["loss"], task.metric, vals[task.metric])
                checkpoint(step)
                window_start = time.perf_counter()
            if stop.reason:
                status = "interrupted"
                checkpoint(step)
                break
    bar.close()

    summary = {
        "status": status, "model": cfg.model.name, "task": task.name, "dataset": data.name,
        "steps": step, "max_steps": t.max_steps, "params": n_params, "train_time_s": round(train_time, 3),
        "wall_time_s": round(time.perf_counter() - wall_start, 3),  # this session: build, train, eval
        "steps_per_s": round(step / train_time, 3) if train_time else None,
        "final_train_loss": last.get("train_loss"),
        **{f"final_{k}": v for k, v in last.items() if k.startswith("val_")},
        f"best_val_{task.metric}": best if best > -math.inf else None, "best_step": best_step,
        "device": str(device), "seed": cfg.seed,
    }
    write_json(run_dir / "metrics.json", summary)
    tb.close(finished=status == "completed")
    if status == "interrupted":
        log.warning("interrupted at step %d; checkpoint saved. Resume with:\n  skipbench train resume=%s", step, run_dir)
    else:
        log.info("done: %s", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return summary


def cfg_choices() -> dict[str, str]:
    """Which option of each config group was chosen (``{"choice.model": "resnet", ...}``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {f"choice.{g}": str(v) for g, v in choices.items() if not g.startswith(("hydra", "schema")) and v is not None}
