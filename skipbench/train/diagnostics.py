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
        return torch.cat([norms[self.layer_index.to(norms.device)], total])
