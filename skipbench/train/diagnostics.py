"""Diagnostics the loop calls as hooks; they see only named layers ordered by depth.

The loop never knows which skip a model uses: :func:`depth_ordered_layers` lists every
weight-bearing layer in registration order, which the models keep equal to forward order.
"""

from __future__ import annotations

import torch
from torch import nn

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def depth_ordered_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every conv / linear layer, input side first."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def layer_tags(names: list[str], prefix: str) -> list[str]:
    """``prefix/07_dec2.stage.0.conv1``: a zero-padded depth index makes tags sort by depth."""
    digits = max(2, len(str(len(names) - 1)))
    return [f"{prefix}/{i:0{digits}d}_{name}" for i, name in enumerate(names)]


class GradNorms:
    """Per-layer gradient L2 norms (of each layer's weight) and the total norm over all parameters.

    Call after ``backward()`` and before ``optimizer.step()`` (after unscaling, under a GradScaler).
    One fused ``torch._foreach_norm`` over all gradients; the result stays on the device as one
    ``[L + 1]`` tensor (layers by depth, then total), so the caller pays a single host transfer
    when it logs -- not one sync per layer.
    """

    def __init__(self, model: nn.Module) -> None:
        layers = depth_ordered_layers(model)
        self.tags = layer_tags([n for n, _ in layers], "grad_norm") + ["grad_norm/total"]
        self.params = [p for p in model.parameters() if p.requires_grad]
        position = {id(p): i for i, p in enumerate(self.params)}
        self.layer_index = torch.tensor([position[id(m.weight)] for _, m in layers], dtype=torch.long)

    @torch.no_grad()
    def __call__(self) -> torch.Tensor:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        norms = torch.stack(torch._foreach_norm(grads)).float()  # [P]
        total = torch.linalg.vector_norm(norms).unsqueeze(0)
        if self.layer_index.device != norms.device:
            self.layer_index = self.layer_index.to(norms.device)  # once, not every log step
        return torch.cat([norms[self.layer_index], total])


def count_flops(model: nn.Module, sample: torch.Tensor) -> int:
    """Forward FLOPs for one sample ``[1, C, H, W]`` (2 per multiply-add), via torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(sample)
    model.train(was_training)
    return int(counter.get_total_flops())


def depth_ordered_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every block (the unit that carries a short skip, or none) in forward order."""
    from ..models import BLOCKS

    return [(n, m) for n, m in model.named_modules() if isinstance(m, tuple(BLOCKS.values()))]


def _section(name: str) -> str:
    """``enc0.0.conv1`` -> ``enc``; ``bottleneck.0.conv2`` -> ``bottleneck``: the part of the network."""
    return name.split(".")[0].rstrip("0123456789")


class Diagnostics:
    """What the loop measures besides the loss, as hooks around the optimizer step.

    Per log step (``log_now``): per-layer gradient norms (before the step), weight norms and update
    ratios ``||w_after - w_before|| / ||w_before||`` (around the step), and the first/last layer
    gradient ratio -- all reduced on the device and fetched with one transfer. Per eval: activation
    mean/std per block on a fixed probe batch, and the gradient-flow pictures.
    """

    def __init__(self, model: nn.Module, cfg) -> None:
        self.cfg, self.model = cfg, model
        layers = depth_ordered_layers(model)
        self.names = [n for n, _ in layers]
        self.weights = [m.weight for _, m in layers]
        self.grad_norms = GradNorms(model) if cfg.grad_norms else None
        self.flow: list[tuple[int, list[float]]] = []  # (step, per-layer grad norms) for the heat map
        self._grads = self._before = self._ratios = None

    # ---- around the optimizer step
    def after_backward(self, log_now: bool) -> None:
        if log_now and self.grad_norms is not None:
            self._grads = self.grad_norms()

    @torch.no_grad()
    def before_step(self, log_now: bool) -> None:
        if log_now and self.cfg.update_ratios:
            self._before = [w.detach().clone() for w in self.weights]

    @torch.no_grad()
    def after_step(self, log_now: bool) -> None:
        if log_now and self._before is not None:
            delta = torch._foreach_sub([w.detach() for w in self.weights], self._before)
            old = torch.stack(torch._foreach_norm(self._before)).float()
            self._ratios = torch.stack(torch._foreach_norm(delta)).float() / old.clamp_min(1e-12)
            self._before = None

    def scalars(self, step: int) -> dict[str, float]:
        """The tags to write at a log step (one host transfer for all of them)."""
        parts, keys = [], []
        if self._grads is not None:
            g = self._grads
            parts += [g, (g[0] / g[-2].clamp_min(1e-30)).unsqueeze(0)]
            keys += self.grad_norms.tags + ["grad_ratio/first_over_last"]
        if self.cfg.weight_norms:
            parts.append(torch.stack(torch._foreach_norm([w.detach() for w in self.weights])).float())
            keys += layer_tags(self.names, "weight_norm")
        if self._ratios is not None:
            parts.append(self._ratios)
            keys += layer_tags(self.names, "update_ratio")
        if not parts:
            return {}
        values = torch.cat([p.to(parts[0].device) for p in parts]).cpu().tolist()
        if self._grads is not None:
            self.flow.append((step, values[: len(self.names)]))
        self._grads = self._ratios = None
        return dict(zip(keys, values))

    # ---- at each eval
    @torch.no_grad()
    def activations(self, probe: torch.Tensor) -> dict[str, float]:
        """Mean and std of every block's output on the probe batch (He et al. 2016, Fig. 7)."""
        if not self.cfg.activations:
            return {}
        blocks = depth_ordered_blocks(self.model)
        stats: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda m, i, o: stats.append(torch.stack([o.float().mean(), o.float().std()])))
                 for _, m in blocks]
        was_training = self.model.training
        try:
            self.model.eval()
            self.model(probe)
        finally:
            self.model.train(was_training)
            for h in hooks:
                h.remove()
        if not stats:
            return {}
        values = torch.stack(stats).cpu()
        names = [n for n, _ in blocks]
        return {**dict(zip(layer_tags(names, "act_mean"), values[:, 0].tolist())),
                **dict(zip(layer_tags(names, "act_std"), values[:, 1].tolist()))}

    def figures(self) -> dict[str, "object"]:
        """``grad_flow/heatmap`` (log10 grad norm, layers x logged steps) and ``grad_flow/by_depth``."""
        if not (self.cfg.grad_flow and self.flow):
            return {}
        from .figures import grad_flow_heatmap, grad_norm_by_depth

        steps = [s for s, _ in self.flow]
        norms = [v for _, v in self.flow]
        return {"grad_flow/heatmap": grad_flow_heatmap(self.names, steps, norms),
                "grad_flow/by_depth": grad_norm_by_depth(self.names, steps[-1], norms[-1])}

    def layout(self) -> dict:
        """TensorBoard custom-scalars layout: each kind of diagnostic, split by network section."""
        sections = list(dict.fromkeys(_section(n) for n in self.names))
        by_section = lambda prefix: {  # noqa: E731
            sec: ["Multiline", [rf"{prefix}/\d+_{sec}\d*(\.|$)"]] for sec in sections  # "head" has no dot
        }
        layout = {
            "losses and metric": {"loss": ["Multiline", ["loss/train", "loss/val"]], "metric": ["Multiline", [r"metric/"]]},
            "vanishing gradients": {"first / last layer grad norm": ["Multiline", ["grad_ratio/first_over_last"]],
                                    "total grad norm": ["Multiline", ["grad_norm/total"]]},
            "gradient norm by section": by_section("grad_norm"),
            "weight norm by section": by_section("weight_norm"),
            "update ratio by section": by_section("update_ratio"),
            "activations by block": {"std": ["Multiline", [r"act_std/"]], "mean": ["Multiline", [r"act_mean/"]]},
        }
        return layout
