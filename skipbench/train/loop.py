"""The training loop: one for every variant and task.

``train(cfg, run_dir)`` builds everything from the config, then runs the phases
data -> forward -> backward -> diagnostics -> step -> log -> eval -> checkpoint. Batches and noise
are pure functions of ``(seed, step)``, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..config import ConfigError
from ..data import EpochSampler, ImageData, Split
from ..errors import CheckpointError
from ..run_folder import COMPLETED, DIVERGED, INTERRUPTED, METRICS, loss_tag, run_info_name, write_json
from ..tasks import Task
from .checkpoint import CHECKPOINT, find_checkpoint, load_checkpoint, resolve_resume, save_checkpoint
from .diagnostics import Diagnostics, count_flops
from .memory import keep_freed_memory, peak_mb, reset_peak, saved_activations_mb
from .prepare import check_runnable, load_data
from .tb import TBLogger, flatten, task_layout

log = logging.getLogger("skipbench")
VAL_NOISE_SEED = 12345  # every eval of every run scores the same noisy validation inputs


def resolve_device(name: str) -> torch.device:
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cuda_graphs(trainer: DictConfig, device: torch.device) -> bool:
    """Whether torch.compile captures CUDA graphs, whose replays reuse their output buffers."""
    return bool(trainer.compile) and device.type == "cuda" and str(trainer.compile_mode) in ("reduce-overhead", "max-autotune")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only, never on norm weights or biases (all 1-d)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


@torch.no_grad()
def evaluate(model, task: Task, val: Split, batch_size: int, autocast) -> tuple[dict[str, float], tuple]:
    """Mean loss and metrics over the whole split; also returns the first batch for the pictures."""
    model.eval()
    g = torch.Generator(val.images.device).manual_seed(VAL_NOISE_SEED)
    sums: dict[str, torch.Tensor] = {}
    first = None
    for start in range(0, len(val), batch_size):
        inputs, target = task.make_batch(val.take(slice(start, start + batch_size)), g)
        with autocast():
            output = model(inputs)
        values = {"loss": task.loss(output, target) * inputs.shape[0],
                  **{k: v.sum() for k, v in task.metrics(inputs, output, target).items()}}
        for k, v in values.items():
            sums[k] = sums.get(k, 0) + v.float()
        task.observe(output, target)
        first = first or (inputs, output, target)
    model.train()
    return {**{k: v.item() / len(val) for k, v in sums.items()}, **task.split_metrics()}, first


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


@dataclass
class TrainState:
    """Everything built from the config, and the counters a checkpoint must carry."""

    cfg: DictConfig
    device: torch.device
    data: ImageData
    task: Task
    model: torch.nn.Module
    forward: Callable  # the model, or its torch.compile'd wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    autocast: Callable
    n_params: int
    flops: int
    step: int = 0
    best: float = -math.inf
    best_step: int = 0
    channels_last: bool = False  # the model's (and the batches') memory format
    train_time: float = 0.0  # seconds in training steps (eval and setup excluded), over all sessions
    data_time: float = 0.0  # seconds of that spent making batches

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "best": self.best, "best_step": self.best_step, "train_time": self.train_time,
                "data_time": self.data_time, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "config": OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best, self.best_step = state["step"], state["best"], state["best_step"]
        self.train_time, self.data_time = state["train_time"], state.get("data_time", 0.0)


def default_threads() -> int | None:
    """Torch CPU threads for a job of a parallel sweep: the cores shared out, so jobs do not
    oversubscribe them (2 jobs x 2 threads on 2 cores run at half the speed of 2 x 1)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    launcher = HydraConfig.get().launcher
    target = str(launcher.get("_target_", ""))
    cores = os.cpu_count() or 1
    if "joblib" in target:
        n_jobs = launcher.get("n_jobs") or 1
        n_jobs = cores + 1 + n_jobs if n_jobs < 0 else n_jobs  # joblib: -1 = all cores
        return max(1, cores // max(1, n_jobs))
    if "submitit" in target and launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    return None


def build(cfg: DictConfig, resume: str | None = None) -> TrainState:
    """Data, task, model, optimizer and schedule from the config (and the checkpoint ``resume`` names)."""
    t = cfg.trainer
    device = resolve_device(t.device)
    threads = t.num_threads or default_threads()
    if threads:
        torch.set_num_threads(threads)
    data = load_data(cfg)
    task: Task = instantiate(cfg.task)
    task.setup(data)
    if task.head == "classes" and str(cfg.model.long_skip) != "none":
        log.warning("note: model %s differs from plain only in its long skips (%s), and task=%s has no decoder "
                    "for them to connect: this run trains the same network as model=plain", cfg.model.name,
                    cfg.model.long_skip, task.name)
    model = instantiate(cfg.model, in_channels=data.channels, out_channels=task.out_channels, head=task.head)
    channels_last = device.type == "cpu" if t.channels_last is None else t.channels_last
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    try:
        # fused=null: torch's fused kernel where it has one; its default is a Python loop over tensors on CPU
        fused = {"fused": True} if cfg.optimizer.get("fused", False) is None and device.type in ("cpu", "cuda") else {}
        optimizer = instantiate(cfg.optimizer)(param_groups(model, cfg.optimizer.weight_decay), **fused)
    except ValueError as ex:  # torch's own argument checks, e.g. "Invalid beta parameter at index 0: 2.0"
        raise ConfigError(f"optimizer: {ex}") from None
    use_amp = t.amp and device.type in ("cuda", "cpu")
    run = TrainState(cfg=cfg, device=device, data=data, task=task, model=model, optimizer=optimizer,
                     forward=torch.compile(model, mode=str(t.compile_mode)) if t.compile else model,
                     scheduler=instantiate(cfg.scheduler)(optimizer, total_steps=t.max_steps),
                     autocast=(lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_amp else nullcontext,
                     n_params=sum(p.numel() for p in model.parameters()), channels_last=channels_last,
                     flops=count_flops(model, task.make_batch(data.val.take(slice(0, 1)), None)[0].to(device)))
    if resume:
        try:
            run.load_state_dict(load_checkpoint(find_checkpoint(resume), device))
        except (RuntimeError, ValueError, KeyError) as ex:  # shapes, parameter groups, missing entries
            raise CheckpointError(f"resume={resume}: the checkpoint does not fit this config "
                                  f"({' '.join(str(ex).split())[:200]})") from None
        log.info("resumed from %s at step %d", resume, run.step)
    return run


def train(cfg: DictConfig, run_dir: Path, on_ready: Callable[[], None] | None = None,
          checked: bool = False) -> dict[str, Any]:
    """Train one run into ``run_dir``; returns the summary also written to ``metrics.json``.

    ``on_ready`` is called once everything is built (checkpoint loaded), before anything is written.
    ``checked``: the caller has run :func:`~skipbench.train.prepare.check_runnable` on this config
    (the CLI does, before the run folder exists); else it runs here, once.
    """
    wall_start = time.perf_counter()
    run_dir, t = Path(run_dir), cfg.trainer
    resume = resolve_resume(cfg.resume, run_dir)
    if not checked:
        check_runnable(cfg, resume)
    run = build(cfg, resume)
    if on_ready:
        on_ready()
    keep_freed_memory()  # CPU: no page faults for re-allocated activations every step
    reset_peak(run.device)
    task, model, optimizer = run.task, run.model, run.optimizer
    train_split, val_split = run.data.train.to(run.device), run.data.val.to(run.device)
    sampler, noise = EpochSampler(len(train_split), t.batch_size, cfg.seed, run.device), torch.Generator(run.device)
    graphs = cuda_graphs(t, run.device)
    write_json(run_dir / run_info_name(run.step), run_info(run))
    diag, tb = Diagnostics(model, cfg.diagnostics), start_tensorboard(run, run_dir)
    train_loss_tag = loss_tag(task.loss_name, "train")  # names the loss: a CE run and an MSE run never share a chart
    last: dict[str, float] = {}
    if run.step == 0:  # a fresh run: every curve starts at the untrained model (a resumed one has it)
        last.update(eval_and_log(run, tb, diag, val_split, None))
        metrics = [k[len("val_"):] for k in last if k != "val_loss"]
        tb.layout({**task_layout(task.name, task.loss_name, metrics), **diag.layout()})  # once per run

    loss_sum, status = torch.zeros((), device=run.device), COMPLETED
    # A log window: `window_steps` steps since `window_start`, of which `paused` seconds were eval.
    window_start, window_steps, paused, start = time.perf_counter(), 0, 0.0, run.step
    # Off a terminal (sweeps, cluster logs) refresh rarely, so log files do not fill with bars.
    bar = tqdm(total=t.max_steps, initial=start, disable=not t.progress, desc=cfg.model.name, unit="step",
               dynamic_ncols=True, mininterval=0.2 if sys.stderr.isatty() else 30)
    with StopFlag() as stop, logging_redirect_tqdm():
        for step in range(start + 1, t.max_steps + 1):  # `step` = optimizer steps done after this one
            # ---- data: the batch and its noise depend only on (seed, step), so resume is exact
            data_start = time.perf_counter()
            batch = train_split.take(sampler.indices(step - 1))
            inputs, target = task.make_batch(batch, noise.manual_seed(cfg.seed * 1_000_003 + step))
            if run.channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            run.data_time += time.perf_counter() - data_start
            # ---- forward
            if graphs:  # a new step: the previous step's graph outputs may be overwritten now
                torch.compiler.cudagraph_mark_step_begin()
            with run.autocast():
                output = run.forward(inputs)
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
            run.scheduler.step()
            run.step, window_steps = step, window_steps + 1
            loss_sum += loss.detach()
            bar.update(1)
            # ---- log: the only host syncs of the hot path, every log_every steps
            if log_now or stop.reason:
                now = time.perf_counter()  # the next window starts here: the cost of logging counts as training
                elapsed = now - window_start - paused
                run.train_time += elapsed
                last["train_loss"] = loss_sum.item() / window_steps
                tb.scalars({train_loss_tag: last["train_loss"], "lr": lr, "perf/steps_per_s": window_steps / elapsed,
                            "perf/images_per_s": window_steps * t.batch_size / elapsed, **diag.scalars(step)}, step)
                bar.set_postfix(loss=f"{last['train_loss']:.4g}", refresh=False)
                loss_sum.zero_()
                window_start, window_steps, paused = now, 0, 0.0
                if not math.isfinite(last["train_loss"]):
                    status, last["error"] = DIVERGED, f"training loss is {last['train_loss']} at step {step}"
                    log.error("%s: stopping this run as diverged", last["error"])
                    break
            # ---- eval and checkpoint
            evaluated = step % t.eval_every == 0 or step == t.max_steps
            if evaluated:
                eval_start = time.perf_counter()
                last.update(eval_and_log(run, tb, diag, val_split, last.get("train_loss")))
                save_checkpoint(run_dir / CHECKPOINT, run.state_dict())
                paused += time.perf_counter() - eval_start
            if stop.reason:
                status, last["signal"] = INTERRUPTED, stop.reason
                if not evaluated:  # an eval step has just saved this very state
                    save_checkpoint(run_dir / CHECKPOINT, run.state_dict())
                break
    bar.close()
    return finish(run, tb, run_dir, status, last, time.perf_counter() - wall_start)


def run_info(run: TrainState) -> dict[str, Any]:
    """What it takes to reproduce the run, beside Hydra's ``.hydra/`` (config and overrides)."""
    import platform
    import subprocess

    from .. import __version__

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit = dirty = None
    return {
        "skipbench": __version__, "git_commit": commit, "git_dirty": dirty, "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(), "host": platform.node(),
        "device": str(run.device),
        "device_name": torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else platform.processor(),
        "torch_threads": torch.get_num_threads(), "seed": run.cfg.seed, "argv": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_from_step": run.step,
    }


def start_tensorboard(run: TrainState, run_dir: Path) -> TBLogger:
    """Open the run's event file; HParams and the model's size go in first."""
    cfg = run.cfg
    # purge_step: on resume, TensorBoard drops the earlier file's events past the checkpoint.
    tb = TBLogger(run_dir, purge_step=run.step + 1 if run.step else None)
    hparams = {**flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)), **cfg_choices(),
               "params": run.n_params, "flops_per_sample": run.flops}
    tb.hparams(hparams)
    log.info("model %s (long_skip=%s, block=%s): %s parameters, %.3g GFLOPs/sample | task %s | data %s %s | device %s",
             cfg.model.name, cfg.model.long_skip, cfg.model.block, f"{run.n_params:,}", run.flops / 1e9,
             run.task.name, run.data.name, tuple(run.data.train.images.shape[1:]), run.device)
    log.info("run folder: %s", run_dir)
    if run.step == 0:
        tb.scalars({"model/params": run.n_params, "model/flops_per_sample": run.flops}, 0)
    return tb


def eval_and_log(run: TrainState, tb: TBLogger, diag: Diagnostics, val: Split, train_loss: float | None) -> dict[str, float]:
    """Validation metrics, activation stats, pictures; returns ``{"val_<metric>": value}``."""
    cfg, task, step = run.cfg, run.task, run.step
    # Under CUDA graphs a replay overwrites the last outputs, which eval keeps for its pictures: eval eagerly.
    graphs = cuda_graphs(cfg.trainer, run.device)
    vals, sample = evaluate(run.model if graphs else run.forward, task, val, cfg.trainer.batch_size, run.autocast)
    if vals[task.metric] > run.best:
        run.best, run.best_step = vals[task.metric], step
    tb.scalars({loss_tag(task.loss_name, "val"): vals["loss"], f"metric/best_val_{task.metric}": run.best,
                **{f"metric/val_{k}": v for k, v in vals.items() if k != "loss"},
                "hparams/score": vals[task.metric], "hparams/best_score": run.best}, step)
    tb.scalars(diag.activations(sample[0]), step)
    # The heat map holds every logged step, so drawing it at the end loses nothing; in between, rarely.
    every = cfg.diagnostics.figures_every
    draw = step == cfg.trainer.max_steps or bool(every) and step % every == 0
    tb.figures({**(diag.figures() if draw else {}), **task.figures()}, step)
    if cfg.diagnostics.images:
        inputs, output, target = (x[: cfg.diagnostics.num_images] for x in sample)
        tb.images("samples/val", task.sample_rows(inputs, output, target), step,
                  labels=task.sample_labels(output, target), legend=task.legend())
    log.info("step %d/%d  train loss %s  val loss %.4g  val %s %.4g", step, cfg.trainer.max_steps,
             "-" if train_loss is None else f"{train_loss:.4g}", vals["loss"], task.metric, vals[task.metric])
    return {f"val_{k}": v for k, v in vals.items()}


def finish(run: TrainState, tb: TBLogger, run_dir: Path, status: str, last: dict, wall_time: float) -> dict[str, Any]:
    """Write ``metrics.json`` (atomically) and close TensorBoard; print the summary."""
    m = run.task.metric
    summary = {
        "status": status, "model": run.cfg.model.name, "task": run.task.name, "dataset": run.data.name,
        "steps": run.step, "max_steps": run.cfg.trainer.max_steps, "params": run.n_params, "flops_per_sample": run.flops,
        "train_time_s": round(run.train_time, 3), "wall_time_s": round(wall_time, 3),  # wall: this session only
        "steps_per_s": round(run.step / run.train_time, 3) if run.train_time else None,
        "data_time_fraction": round(run.data_time / run.train_time, 4) if run.train_time else None,
        "final_train_loss": last.get("train_loss"),
        **{f"final_{k}": v for k, v in last.items() if k.startswith("val_")},
        f"best_val_{m}": run.best if run.best > -math.inf else None, "best_step": run.best_step,
        "device": str(run.device), "seed": run.cfg.seed,
        **dict(zip(("peak_memory_mb", "peak_memory_kind"), peak_mb(run.device))),  # see train/memory.py
        "activations_mb": activations_mb(run),
        **{k: last[k] for k in ("error", "signal") if k in last},  # why it diverged / which signal stopped it
    }
    write_json(run_dir / METRICS, summary)
    tb.close(finished=status == COMPLETED)
    if status == INTERRUPTED:
        log.warning("interrupted at step %d; checkpoint saved. Resume with:\n  skipbench train resume=%s", run.step, run_dir)
    else:
        log.info("done: %s", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return summary


def activations_mb(run: TrainState) -> float:
    """What autograd keeps for backward in one training batch (train/memory.py)."""
    t = run.cfg.trainer
    inputs, _ = run.task.make_batch(run.data.train.take(slice(0, t.batch_size)).to(run.device), None)
    if run.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return saved_activations_mb(run.model, inputs, run.autocast)


def cfg_choices() -> dict[str, str]:
    """Which option of each config group was chosen (``{"choice.model": "resnet", ...}``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {f"choice.{g}": str(v) for g, v in choices.items() if not g.startswith(("hydra", "schema")) and v is not None}
