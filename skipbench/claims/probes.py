"""Measurements the training loop does not make, on a model at initialisation or from a checkpoint.

``skipbench probe [overrides]`` is a Hydra task over the same config as ``skipbench train``: it
builds data, task and model exactly as a training run would (same seed, same init) and writes
``probe.json`` into the run folder instead of training -- so a probe preset is an ordinary sweep.
Every function here takes a built model and tensors; nothing here trains.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import seeds
from ..run_folder import (CHECKPOINT, COMPLETED, CONFIG, METRICS, MODEL_STATE, PROBE, is_main_conv, literal,
                          read_yaml, resolve_nodes)
from ..train.diagnostics import GradNorms, count_flops
from ..train.memory import saved_tensor_bytes

LINE_POINTS = 64  # inputs along the 1-d line for the gradient autocorrelation
LINE_SPAN = 0.5  # the line's length in units of the input's norm (shattering shows at this scale)


def main_path(names: list[str]) -> list[int]:
    """Indices of main-path convs (``03_enc1/conv2``), not extras (``.shortcut``), up-convs or the head."""
    return [i for i, n in enumerate(names) if is_main_conv(n)]


def grad_profile(model: nn.Module, task, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    """Per-layer gradient norm relative to the weight norm, ``||dL/dW|| / ||W||``, after one backward
    (train mode, as in training), and its spread over the main-path convs in decades:
    ``log10(max) - log10(min)``. Relative norms make layers of different widths comparable."""
    grads = GradNorms(model)
    model.train()
    model.zero_grad(set_to_none=True)
    task.loss(model(inputs), target).backward()
    norms = grads()[: len(grads.names)]
    weights = torch.stack([m.weight.detach().norm() for m in _layers(model)])
    rel = (norms / weights.clamp_min(1e-30)).tolist()
    idx = main_path(grads.names)
    logs = [math.log10(max(rel[i], 1e-30)) for i in idx]
    model.zero_grad(set_to_none=True)
    return {"layers": [grads.names[i] for i in idx], "log10_rel_grad": logs,
            "spread_decades": max(logs) - min(logs) if logs else None,
            "first_over_last_decades": logs[0] - logs[-1] if logs else None}


def _layers(model: nn.Module) -> list[nn.Module]:
    from ..train.diagnostics import skeleton_layers

    return [m for _, m in skeleton_layers(model)[0]]


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, inputs: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to exactly those of ``inputs`` (one train-mode forward
    with a cumulative average), so eval mode normalises as training would, but each sample alone."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = model.training
    model.train()
    try:
        model(inputs)
    finally:
        model.train(was_training)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


def gradient_autocorrelation(model: nn.Module, x0: torch.Tensor, seed: int = 0,
                             calibration: torch.Tensor | None = None) -> dict[str, Any]:
    """Balduzzi et al. (2017): how correlated are input gradients of neighbouring inputs?

    ``x0 [C, H, W]``: inputs ``x_t = x0 + (t / N - 1/2) * span * ||x0|| * v`` along a random unit
    direction ``v`` (``N = LINE_POINTS``); per input the gradient of a fixed random projection of the
    output w.r.t. the input; returns the mean Pearson correlation of gradients of neighbouring points
    (1 = smooth, ~0 = shattered). Eval mode, so each point is independent of the others; with
    ``calibration [B, C, H, W]`` BatchNorm first takes that batch's statistics (:func:`calibrate_batchnorm`),
    so it normalises as in training instead of using whatever running statistics the model holds.
    """
    if calibration is not None:
        calibrate_batchnorm(model, calibration)
    g = seeds.generator(seed, "probe_direction")
    v = torch.randn(x0.shape, generator=g)
    v = v / v.norm()
    t = torch.linspace(-0.5, 0.5, LINE_POINTS).view(-1, 1, 1, 1)
    xs = (x0.unsqueeze(0) + t * LINE_SPAN * x0.norm() * v.unsqueeze(0)).requires_grad_(True)
    was_training = model.training
    model.eval()
    try:
        out = model(xs)
        proj = torch.randn(out.shape[1:], generator=g)
        (out * proj).sum().backward(inputs=[xs])
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    grads = xs.grad.flatten(1)
    grads = grads - grads.mean(1, keepdim=True)
    grads = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-30)
    corr = (grads[1:] * grads[:-1]).sum(1)
    return {"neighbour_corr": corr.mean().item(), "neighbour_corr_min": corr.min().item(), "points": LINE_POINTS}


def training_memory(model: nn.Module, task, inputs: torch.Tensor, target: torch.Tensor) -> dict[str, int]:
    """Bytes a training step holds: parameters + gradients, and the activations autograd saves for
    backward (counted once per storage) -- what grows with concatenation. Exact and device-independent,
    unlike a process's peak RSS (which a sweep's shared worker processes only ever raise)."""
    model.train()
    with saved_tensor_bytes(model) as saved:
        loss = task.loss(model(inputs), target)
    activations = saved()
    loss.backward()
    model.zero_grad(set_to_none=True)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"activation_bytes": int(activations), "param_bytes": int(param_bytes),
            "step_bytes": int(activations + 2 * param_bytes), "batch": int(inputs.shape[0])}


def response_std(model: nn.Module, probe: torch.Tensor) -> dict[str, Any]:
    """He et al. (2016, Fig. 7): std of every 3x3 layer's response after its BatchNorm and before the
    nonlinearity or the addition (``bn1``/``bn2`` of plain and residual blocks), eval mode, on ``probe``."""
    from ..models.blocks import PlainBlock, ResidualBlock

    stds: list[tuple[str, torch.Tensor]] = []
    hooks = []
    for path, block in model.named_modules():
        if isinstance(block, (PlainBlock, ResidualBlock)):
            for name in ("bn1", "bn2"):
                hooks.append(getattr(block, name).register_forward_hook(
                    lambda m, i, o, key=f"{path}.{name}": stds.append((key, o.float().std()))))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(probe)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    values = [s.item() for _, s in stds]
    return {"layers": [k for k, _ in stds], "std": values,
            "mean_std": sum(values) / len(values) if values else None}


# ---------------------------------------------------------------- the Hydra task
def probe_run(cfg, run_dir: Path) -> dict[str, Any]:
    """Build the run as ``skipbench train`` would, measure it at initialisation, write ``probe.json``."""
    from ..run_folder import write_json
    from ..train.loop import build
    from ..train.validate import check_runnable

    check_runnable(cfg, None)
    run = build(cfg)
    batch = run.data.train.take(torch.arange(cfg.trainer.batch_size))
    inputs, target = run.task.make_batch(batch, seeds.generator(cfg.seed, "probe_batch"))
    result = {
        "status": COMPLETED, "model": cfg.model.name, "seed": cfg.seed, "params": run.n_params,
        "flops_per_sample": run.flops,
        "grad": grad_profile(run.model, run.task, inputs, target),
        "shattered": gradient_autocorrelation(run.model, inputs[0], seed=cfg.seed, calibration=inputs),
        "memory": training_memory(run.model, run.task, inputs, target),
    }
    write_json(Path(run_dir) / PROBE, result)
    write_json(Path(run_dir) / METRICS, {"status": COMPLETED, "model": cfg.model.name, "seed": cfg.seed,
                                         "params": run.n_params, "flops_per_sample": run.flops, "probe": PROBE})
    return result


def probe_summary(result: dict[str, Any], run_dir: Path) -> str:
    """What a probe measured, on one screen (the numbers are in ``probe.json``)."""
    grad, shat, mem = result["grad"], result["shattered"], result["memory"]
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
    lines = [
        f"probe of model {result['model']} at initialisation (seed {result['seed']}): {result['params']:,} parameters, "
        f"{result['flops_per_sample'] / 1e6:.1f} MFLOP per sample (forward)",
        f"  gradients by depth: ||dL/dW||/||W|| spreads over {fmt(grad['spread_decades'], '.2f')} decades across "
        f"{len(grad['layers'])} main-path convs (first over last: {fmt(grad['first_over_last_decades'], '+.2f')})",
        f"  shattering: neighbouring inputs' gradients correlate {shat['neighbour_corr']:.3f} on average "
        f"(min {shat['neighbour_corr_min']:.3f}; 1 = smooth, 0 = shattered)",
        f"  memory of a training step (batch {mem['batch']}): activations {mem['activation_bytes'] / 2**20:.1f} MiB, "
        f"parameters {mem['param_bytes'] / 2**20:.2f} MiB, in all {mem['step_bytes'] / 2**20:.1f} MiB",
        f"wrote {Path(run_dir) / PROBE} (a probe folder: the report leaves it out of training comparisons)",
    ]
    return "\n".join(lines)


def load_trained(run_dir: Path):
    """The trained run in ``run_dir`` rebuilt from its saved config and checkpoint (for post-training probes)."""
    return trained_and_initial(run_dir)[0]


def trained_and_initial(run_dir: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    """``(run, initial state_dict)``: the run rebuilt from its saved config (which draws its initial weights
    from the run's seed again) with the checkpoint loaded, eval mode, and the weights it started from.
    One-line errors for a folder that is not a finished run, or a checkpoint of another architecture."""
    from omegaconf import OmegaConf

    from ..errors import CheckpointError, ConfigError
    from ..train.checkpoint import load_checkpoint
    from ..train.loop import build

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no {CONFIG}); give a folder `skipbench train` wrote")
    if not (run_dir / CHECKPOINT).is_file():
        raise ConfigError(f"{run_dir}: no {CHECKPOINT} (the run stopped before its first eval, or was a probe); "
                          "train it first")
    # the folder's config as data: its own ${a.b} filled in, a resolver call (${oc.env:...}) kept literal
    cfg = OmegaConf.create(literal(resolve_nodes(read_yaml(run_dir / CONFIG))))
    state = load_checkpoint(run_dir / CHECKPOINT, torch.device("cpu"))[MODEL_STATE]
    run = build(cfg)
    # tensors cloned; extra states (a DropPath's call count, a dict) copied as they are
    initial = {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
               for k, v in run.model.state_dict().items()}
    try:
        run.model.load_state_dict(state)
    except RuntimeError as ex:
        raise CheckpointError(f"{run_dir / CHECKPOINT}: does not fit the model its config builds ({cfg.model.name}): "
                              f"{' '.join(str(ex).split())[:200]}") from None
    run.model.eval()
    return run, initial


def val_psnr_on(run, size: int, batch_size: int = 64) -> float:
    """Mean validation PSNR over the central ``size x size`` pixels of output and target, with the
    validation noise every eval uses -- so a padded and a valid-conv model are scored on the same area."""
    from ..models.blocks import crop_to
    from ..tasks import psnr

    val = run.data.val
    g = seeds.generator(seeds.VAL_NOISE_SEED, "val_noise")
    ref = torch.empty(1, 1, size, size)
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(val), batch_size):
            inputs, target = run.task.make_batch(val.take(slice(start, start + batch_size)), g)
            out = crop_to(run.model(inputs).float(), ref)
            total += psnr(out, crop_to(target, ref)).sum().item()
            n += inputs.shape[0]
    return total / n
