"""The training loop: one for every variant and task.

``build(cfg, resume, context)`` makes everything from the config, ``fit(run, run_dir, context)`` runs the
phases data -> forward -> backward -> diagnostics -> step -> log -> eval -> checkpoint, and
``train(cfg, run_dir)`` does both after the run's validation. Batches and noise are pure functions of
``(seed, step)`` (:mod:`skipbench.seeds`), so a resumed run continues exactly where it stopped. What the
caller knows about where the run executes (device, threads, provenance, config choices) arrives as a
:class:`~skipbench.train.context.RunContext`: the loop knows nothing of Hydra, launchers or git.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .. import seeds
from ..config import instantiate_checked
from ..data import EpochSampler, ImageData, Split
from ..data.augment import augment
from ..errors import CheckpointError, ConfigError
from ..run_folder import (BEST_SCORE, COMPLETED, COUNTERS, DIVERGED, FINAL_TRAIN_LOSS, IMAGES_PER_S, INTERRUPTED, LR,
                          METRICS, MODEL_FLOPS, MODEL_PARAMS, MODEL_STATE, OPTIMIZER_STATE, SAVED_CONFIG,
                          SCHEDULER_STATE, SCORE, STEP, STEPS_PER_S, LAYERS_JSON, LAYERS_MD, LAYERS_TEXT, best_key, final_key, loss_tag, metric_tag,
                          run_info_name, write_json)
from ..tasks import Task
from .checkpoint import CHECKPOINT, find_checkpoint, load_checkpoint, resolve_resume, save_checkpoint
from .context import RunContext, contention_hint
from .data_cache import load_data
from .debug import anomaly_error, anomaly_mode, profiler, trim
from .diagnostics import Diagnostics, count_flops, detail_categories
from .memory import keep_freed_memory, peak_mb, reset_peak, saved_activations_mb
from .tb import TBLogger, flatten, task_layout
from .validate import check_runnable

log = logging.getLogger("skipbench")


def cuda_graphs(trainer: DictConfig, device: torch.device) -> bool:
    """Whether torch.compile captures CUDA graphs, whose replays reuse their output buffers."""
    return bool(trainer.compile) and device.type == "cuda" and str(trainer.compile_mode) in ("reduce-overhead", "max-autotune")


def param_groups(model: torch.nn.Module, weight_decay: float, decay: str = "weights") -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only, never on norm weights or biases (all 1-d); ``decay="all"``:
    on every parameter, as the papers' Caffe / Torch code did (He et al. 2016a's 1e-4)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay == "all":
        return [{"params": params, "weight_decay": weight_decay}]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


@torch.no_grad()
def evaluate(model, task: Task, val: Split, batch_size: int, autocast) -> tuple[dict[str, float], tuple]:
    """Mean loss and metrics over the whole split; also returns the first batch for the pictures."""
    model.eval()
    g = seeds.generator(seeds.VAL_NOISE_SEED, "val_noise", device=val.images.device)  # the same for every run
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
        # Only the flag: the signal may land inside a logging call (a flush of train.log), and a handler
        # that logs re-enters that buffered writer ("reentrant call", a traceback). The loop logs the stop.

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
    wall_time: float = 0.0  # wall seconds of the earlier sessions, each up to its last checkpoint
    session_start: float | None = None  # time.perf_counter() when this session began (set by fit)

    def total_wall(self) -> float:
        """Wall seconds over all sessions so far (earlier ones up to their checkpoint, this one up to now)."""
        return self.wall_time + (time.perf_counter() - self.session_start if self.session_start is not None else 0.0)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint (its keys: :mod:`skipbench.run_folder`)."""
        return {STEP: self.step, **{k: getattr(self, k) for k in COUNTERS}, "wall_time": self.total_wall(),
                MODEL_STATE: self.model.state_dict(),
                OPTIMIZER_STATE: self.optimizer.state_dict(), SCHEDULER_STATE: self.scheduler.state_dict(),
                SAVED_CONFIG: OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state[MODEL_STATE])
        self.optimizer.load_state_dict(state[OPTIMIZER_STATE])
        self.scheduler.load_state_dict(state[SCHEDULER_STATE])
        self.step = state[STEP]
        for k in COUNTERS:  # data_time and wall_time came later: older checkpoints lack them
            setattr(self, k, state[k] if k in state or k not in ("data_time", "wall_time") else 0.0)


def build(cfg: DictConfig, resume: str | None = None, context: RunContext | None = None) -> TrainState:
    """Data, task, model, optimizer and schedule from the config (and the checkpoint ``resume`` names)."""
    t = cfg.trainer
    context = context or RunContext.local(cfg, info={})
    device = context.device
    threads = t.num_threads or context.threads
    if threads:
        torch.set_num_threads(threads)
    data = trim(load_data(cfg), t)  # all of it, unless a debug= preset asks for a few batches
    task: Task = instantiate_checked(cfg.task)
    task.setup(data)
    if task.head == "classes" and str(cfg.model.get("long_skip", "none")) != "none":
        log.warning("note: model %s differs from plain only in its long skips (%s), and task=%s has no decoder "
                    "for them to connect: this run trains the same network as model=plain", cfg.model.name,
                    cfg.model.long_skip, task.name)
    with seeds.seeded(cfg.seed, "init"):  # the initial weights: their own stream, whatever ran before
        model = instantiate_checked(cfg.model, in_channels=data.channels, out_channels=task.out_channels, head=task.head)
    channels_last = device.type == "cpu" if t.channels_last is None else t.channels_last
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    try:
        # fused=null: torch's fused kernel where it has one; its default is a Python loop over tensors on CPU
        fused = {"fused": True} if cfg.optimizer.get("fused", False) is None and device.type in ("cpu", "cuda") else {}
        groups = param_groups(model, cfg.optimizer.weight_decay, str(t.get("weight_decay_on", "weights")))
        optimizer = instantiate_checked(cfg.optimizer)(groups, **fused)
    except ValueError as ex:  # torch's own argument checks, e.g. "Invalid beta parameter at index 0: 2.0"
        raise ConfigError(f"optimizer: {ex}") from None
    use_amp = t.amp and device.type in ("cuda", "cpu")
    run = TrainState(cfg=cfg, device=device, data=data, task=task, model=model, optimizer=optimizer,
                     forward=torch.compile(model, mode=str(t.compile_mode)) if t.compile else model,
                     scheduler=instantiate_checked(cfg.scheduler)(optimizer, total_steps=t.max_steps),
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


def train(cfg: DictConfig, run_dir: Path, context: RunContext | None = None) -> dict[str, Any]:
    """Check, build and train one run into ``run_dir``; returns the summary also written to ``metrics.json``."""
    wall_start = time.perf_counter()
    context = context or RunContext.local(cfg)
    resume = resolve_resume(cfg.resume, Path(run_dir))
    check_runnable(cfg, resume)
    return fit(build(cfg, resume, context), run_dir, context, wall_start)


def fit(run: TrainState, run_dir: Path, context: RunContext, wall_start: float | None = None) -> dict[str, Any]:
    """Train a built run to ``trainer.max_steps`` (from its checkpoint's step on resume); returns the summary.

    ``wall_start``: when this session began (``time.perf_counter()``), for the summary's wall time.
    """
    wall_start = time.perf_counter() if wall_start is None else wall_start
    run.session_start = wall_start
    cfg = run.cfg
    run_dir, t = Path(run_dir), cfg.trainer
    keep_freed_memory()  # CPU: no page faults for re-allocated activations every step
    reset_peak(run.device)
    task, model, optimizer = run.task, run.model, run.optimizer
    train_split, val_split = run.data.train.to(run.device), run.data.val.to(run.device)
    sampler, noise = EpochSampler(len(train_split), t.batch_size, cfg.seed, run.device), torch.Generator(run.device)
    graphs = cuda_graphs(t, run.device)
    aug = cfg.get("augment") or OmegaConf.create({"crop_padding": 0, "flip": False})  # older run configs lack it
    write_json(run_dir / run_info_name(run.step), run_info(run, context))
    diag, tb = Diagnostics(model, cfg.diagnostics, task.name), start_tensorboard(run, run_dir, context.choices)
    train_loss_tag = loss_tag(task.loss_name, "train")  # names the loss: a CE run and an MSE run never share a chart
    last: dict[str, float] = {}
    if run.step == 0:  # a fresh run: every curve starts at the untrained model (a resumed one has it)
        last.update(eval_and_log(run, tb, diag, val_split, None))
        metrics = [k[len("val_"):] for k in last if k != "val_loss"]
        tb.layout({**task_layout(task.name, task.loss_name, metrics), **diag.layout()}, detail_categories(diag.layout()))  # once per run

    loss_sum, status = torch.zeros((), device=run.device), COMPLETED
    # A log window: `window_steps` steps since `window_start`, of which `paused` seconds were eval.
    window_start, window_steps, paused, start = time.perf_counter(), 0, 0.0, run.step
    # Off a terminal (sweeps, cluster logs) refresh rarely, so log files do not fill with bars.
    bar = tqdm(total=t.max_steps, initial=start, disable=not t.progress, desc=cfg.model.name, unit="step",
               dynamic_ncols=True, mininterval=0.2 if sys.stderr.isatty() else 30)
    with StopFlag() as stop, logging_redirect_tqdm(), anomaly_mode(t), profiler(t, run_dir) as prof:
        for step in range(start + 1, t.max_steps + 1):  # `step` = optimizer steps done after this one
            # ---- data: the batch and its noise depend only on (seed, step), so resume is exact
            data_start = time.perf_counter()
            batch = train_split.take(sampler.indices(step - 1))
            if aug.crop_padding or aug.flip:  # training batches only; a function of (seed, step): resume is exact
                batch = augment(batch, cfg.seed, step, aug.crop_padding, aug.flip)
            inputs, target = task.make_batch(batch, noise.manual_seed(seeds.derive(cfg.seed, "noise", step)))
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
            try:
                loss.backward()
            except RuntimeError as ex:  # trainer.detect_anomaly: the op whose backward made a NaN names itself
                why = anomaly_error(ex) if t.detect_anomaly else None
                if why is None:
                    raise
                status, last["error"] = DIVERGED, f"{why} at step {step} (trainer.detect_anomaly)"
                log.error("%s: stopping this run as diverged", last["error"])
                break
            # ---- diagnostics: gradients as they are before the optimizer touches them
            log_now = step % t.log_every == 0 or step == t.max_steps
            diag.after_backward(log_now)
            if step == start + 1:  # once: parameters the forward never used (a user's model may have some)
                from ..models.custom import unused_parameters

                unused = unused_parameters(model)
                if unused:
                    log.info("note: %d parameter tensor(s) got no gradient (unused by forward; shown as 0, "
                             "a dead layer): %s", len(unused), ", ".join(unused[:5]) + (" ..." if len(unused) > 5 else ""))
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
            if prof is not None:  # trainer.profile_steps
                prof.step()
            # ---- log: the only host syncs of the hot path, every log_every steps
            if stop.reason:  # logged before a possible eval, so the user sees the Ctrl-C taken; the loop ends below
                log.warning("%s received: stopping after step %d and saving a checkpoint (again to abort)",
                            stop.reason, step)
            if log_now or stop.reason:
                now = time.perf_counter()  # the next window starts here: the cost of logging counts as training
                elapsed = now - window_start - paused
                run.train_time += elapsed
                last["train_loss"] = loss_sum.item() / window_steps
                tb.scalars({train_loss_tag: last["train_loss"], LR: lr, STEPS_PER_S: window_steps / elapsed,
                            IMAGES_PER_S: window_steps * t.batch_size / elapsed, **diag.scalars(step)}, step)
                bar.set_postfix(loss=f"{last['train_loss']:.4g}", refresh=False)
                if step == start + t.log_every and step < t.max_steps:  # the first full window, once per session
                    hint = contention_hint(window_steps / elapsed, run.device, torch.get_num_threads())
                    if hint:
                        log.warning(hint)
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
    last["dead_layers"] = list(diag.dead)
    return finish(run, tb, run_dir, status, last, time.perf_counter() - wall_start)


def run_info(run: TrainState, context: RunContext) -> dict[str, Any]:
    """What it takes to reproduce the run, beside Hydra's ``.hydra/`` (config and overrides): the caller's
    provenance (versions, git, command line) and this session's device, threads and start."""
    import platform

    return {
        **context.info, "device": str(run.device),
        "device_name": torch.cuda.get_device_name(run.device) if run.device.type == "cuda" else platform.processor(),
        "torch_threads": torch.get_num_threads(), "seed": run.cfg.seed,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_from_step": run.step,
    }


def start_tensorboard(run: TrainState, run_dir: Path, choices: dict[str, str] | None = None) -> TBLogger:
    """Open the run's event file; HParams (the config, and ``choices``: which option of each config group)
    and the model's size go in first."""
    cfg = run.cfg
    # purge_step: on resume, TensorBoard drops the earlier file's events past the checkpoint.
    tb = TBLogger(run_dir, purge_step=run.step + 1 if run.step else None)
    hparams = {**flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)), **(choices or {}),
               "params": run.n_params, "flops_per_sample": run.flops, "tags": ",".join(cfg.get("tags") or [])}
    tb.hparams(hparams)
    log.info("model %s (%s): %s parameters, %.3g GFLOPs/sample | task %s | data %s %s | device %s",
             cfg.model.name, model_kind(cfg.model), f"{run.n_params:,}", run.flops / 1e9,
             run.task.name, run.data.name, tuple(run.data.train.images.shape[1:]), run.device)
    if run.step == 0:
        from ..models.custom import parameter_notes

        for note in parameter_notes(run.model):
            log.info("note: %s", note)
    log.info("run folder: %s", run_dir)
    if run.step == 0:
        tb.scalars({MODEL_PARAMS: run.n_params, MODEL_FLOPS: run.flops}, 0)
        write_layer_table(run, run_dir, tb)
    return tb


def write_layer_table(run: TrainState, run_dir: Path, tb: TBLogger) -> None:
    """The per-layer cost table (shape, params, FLOPs, saved bytes) into the run folder and TensorBoard's Text tab."""
    from .layer_table import layer_table, render, rows_json

    sample = run.task.make_batch(run.data.val.take(slice(0, 1)).to(run.device), None)[0]
    rows = layer_table(run.model, sample)
    text = render(rows, f"{run.cfg.model.name}: per-layer cost")
    (run_dir / LAYERS_MD).write_text(text)
    write_json(run_dir / LAYERS_JSON, {"model": run.cfg.model.name, "per": "sample", "layers": rows_json(rows)})
    tb.text(LAYERS_TEXT, text, 0)


def model_kind(m: DictConfig) -> str:
    """What the log line says the model is: its skips, or the user's module it was built from."""
    from ..models.custom import is_custom

    if is_custom(m):
        return f"your nn.Module {m.target}"
    return f"long_skip={m.long_skip}, block={m.block}"


def eval_and_log(run: TrainState, tb: TBLogger, diag: Diagnostics, val: Split, train_loss: float | None) -> dict[str, float]:
    """Validation metrics, activation stats, pictures; returns ``{"val_<metric>": value}``."""
    cfg, task, step = run.cfg, run.task, run.step
    # Under CUDA graphs a replay overwrites the last outputs, which eval keeps for its pictures: eval eagerly.
    graphs = cuda_graphs(cfg.trainer, run.device)
    vals, sample = evaluate(run.model if graphs else run.forward, task, val, cfg.trainer.batch_size, run.autocast)
    if vals[task.metric] > run.best:
        run.best, run.best_step = vals[task.metric], step
    tb.scalars({loss_tag(task.loss_name, "val"): vals["loss"], metric_tag(best_key(f"val_{task.metric}")): run.best,
                **{metric_tag(f"val_{k}"): v for k, v in vals.items() if k != "loss"},
                SCORE: vals[task.metric], BEST_SCORE: run.best}, step)
    tb.scalars(diag.activations(sample[0]), step)
    # The heat map holds every logged step, so drawing it at the end loses nothing; in between, rarely.
    every = cfg.diagnostics.figures_every
    draw = step == cfg.trainer.max_steps or bool(every) and step % every == 0
    tb.figures({**(diag.figures() if draw else {}), **task.figures()}, step)
    if draw:
        tb.histograms(diag.histograms(), step)
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
        # over all sessions of the run (a resume adds to them); session_wall_s: this session alone
        "train_time_s": round(run.train_time, 3), "wall_time_s": round(run.wall_time + wall_time, 3),
        "session_wall_s": round(wall_time, 3),
        "steps_per_s": round(run.step / run.train_time, 3) if run.train_time else None,  # steps / train_time_s
        "data_time_fraction": round(run.data_time / run.train_time, 4) if run.train_time else None,
        FINAL_TRAIN_LOSS: last.get("train_loss"),
        **{final_key(k): v for k, v in last.items() if k.startswith("val_")},
        best_key(f"val_{m}"): run.best if run.best > -math.inf else None, "best_step": run.best_step,
        "device": str(run.device), "seed": run.cfg.seed, "tags": list(run.cfg.get("tags") or []),
        **dict(zip(("peak_memory_mb", "peak_memory_kind"), peak_mb(run.device))),  # see train/memory.py
        "activations_mb": activations_mb(run),
        "dead_layers": last.get("dead_layers", []),  # exactly zero gradient for diagnostics.dead_after log steps
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
