"""The small parts around a residual branch ``F``: how it is scaled, dropped, and how it meets the shortcut.

A residual block (:class:`~skipbench.models.blocks.ResidualBlock`) computes
``join(drop(scale(F(x))), s, x)`` with ``s = shortcut(x)``; each part is a module made here and handed to
the block (as torchvision's ResNet is handed its block and projection), so the block is written once.

Joins, ``model.shortcut`` (He, Zhang, Ren & Sun 2016b, "Identity mappings", Table 1)::

    identity        F + s
    scaled          F + lam * s                 constant scaling, lam = model.shortcut_scale
    gated           g * F + (1 - g) * s         exclusive gating, g = sigmoid(W_g x + b_g), b_g = model.shortcut_gate_bias
    shortcut_gated  F + (1 - g) * s             shortcut-only gating
    conv1x1         F + s                       s is a 1x1 conv (+ norm) on every block, not only where shapes change
    dropout         F + dropout_p(s)            p = model.shortcut_dropout
    zero_pad        F + s                       where shapes change, s = x subsampled and zero-padded to the new
                                                channels (He et al. 2016a's option A: no parameters);
                                                ``identity`` there is option B (a 1x1 projection), ``conv1x1`` option C

Residual scales, ``model.residual_scale``::

    none       F
    rezero     alpha * F, alpha learnable, 0 at init (Bachlechner et al. 2020); the block drops its
               post-addition ReLU, so it is x + alpha F(x): the identity at init
    skipinit   alpha * F, alpha learnable, 0 at init, at the end of the branch (De & Smith 2020); the
               block is otherwise unchanged (a post-activation block keeps relu(x + alpha F(x)))
    fixup      m * F + b, m = 1, b = 0 (Zhang, Dauphin & Ma 2019), with scalar biases before each conv
               and activation (:class:`ScalarBias`) and the init of :func:`fixup_factor`

Stochastic depth (``model.drop_path``, Huang et al. 2016): :class:`DropPath`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import seeds

SHORTCUTS = ("identity", "scaled", "gated", "shortcut_gated", "conv1x1", "dropout", "zero_pad")
RESIDUAL_SCALES = ("none", "rezero", "skipinit", "fixup")


def fixup_factor(branches: int, layers_per_branch: int) -> float:
    """Fixup's rescaling of a branch's (non-last) layers: ``L ** (-1 / (2m - 2))`` for ``L`` branches of
    ``m`` layers (Zhang et al. 2019, Sec. 3: the update of each branch then is O(1/L) of the output's)."""
    if layers_per_branch < 2:
        raise ValueError(f"Fixup needs branches of >= 2 layers, not {layers_per_branch}")
    return float(branches) ** (-1.0 / (2 * layers_per_branch - 2))


def crop_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Centre-crop the maps ``x: [B, C, H, W]`` (or masks ``[B, H, W]``) to ``ref``'s spatial size (a no-op with padded convs and
    for vectors ``[B, C]``)."""
    if x.dim() < 3 or ref.dim() < 3:  # vectors [B, C] have no pixels (masks [B, H, W] do)
        return x
    dh, dw = x.shape[-2] - ref.shape[-2], x.shape[-1] - ref.shape[-1]
    if dh == 0 and dw == 0:
        return x
    return x[..., dh // 2 : dh // 2 + ref.shape[-2], dw // 2 : dw // 2 + ref.shape[-1]]


class ZeroPadShortcut(nn.Module):
    """Option A (He et al. 2016a, Sec. 4.2): ``[B, in_ch, H, W] -> [B, out_ch, H/stride, W/stride]`` by taking
    every ``stride``-th pixel and padding the new channels with zeros (half before, half after the old
    ones, as the authors' Torch code did); no parameters."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"zero_pad shortcut: cannot pad {in_ch} channels down to {out_ch}")
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[..., :: self.stride, :: self.stride]
        extra = self.out_ch - self.in_ch
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2)) if x.dim() == 4 else F.pad(x, (extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"{self.in_ch} -> {self.out_ch}, stride={self.stride}"


# ---------------------------------------------------------------- scalars
class ScalarBias(nn.Module):
    """``x + b`` with one learnable scalar ``b``, 0 at init (Fixup's biases)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def reset_skip_init(self) -> None:
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class Multiplier(nn.Module):
    """``alpha * x`` with one learnable scalar ``alpha``, ``init`` at init (ReZero's and SkipInit's 0),
    and a scalar bias after it when ``bias`` (Fixup's multiplier 1 and bias 0)."""

    def __init__(self, init: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.init = init
        self.alpha = nn.Parameter(torch.full((1,), float(init)))
        self.bias = nn.Parameter(torch.zeros(1)) if bias else None

    def reset_skip_init(self) -> None:
        nn.init.constant_(self.alpha, self.init)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.alpha * x
        return x if self.bias is None else x + self.bias


def residual_scale(kind: str) -> nn.Module:
    """The module that scales a residual branch's output (``model.residual_scale``)."""
    return {"none": nn.Identity, "rezero": Multiplier, "skipinit": Multiplier,
            "fixup": lambda: Multiplier(1.0, bias=True)}[kind]()


# ---------------------------------------------------------------- joins
class Join(nn.Module):
    """``F + s`` (the identity shortcut; ``conv1x1`` too, whose ``s`` is already the 1x1 conv's output).

    ``forward(f, s, x)``: ``f`` the (scaled) branch, ``s`` the shortcut's output cropped to ``f``, ``x`` the
    block's input (what a gate reads)."""

    def forward(self, f: torch.Tensor, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return f + s


class ScaledJoin(Join):
    """``F + lam * s``: constant scaling of the shortcut."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, f: torch.Tensor, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return f + self.scale * s


class GatedJoin(Join):
    """``g F + (1 - g) s`` (exclusive) or ``F + (1 - g) s`` (shortcut only), ``g = sigmoid(W_g x + b_g)``
    from a 1x1 conv (or linear layer) ``gate``; ``b_g`` starts at ``gate_bias`` (He 2016b: -6 favours the
    shortcut, ``1 - g ~ 1``)."""

    def __init__(self, gate: nn.Module, gate_bias: float, exclusive: bool) -> None:
        super().__init__()
        self.gate, self.gate_bias, self.exclusive = gate, gate_bias, exclusive
        self.reset_skip_init()  # a block built alone starts right too (the skeleton resets again after its init)

    def reset_skip_init(self) -> None:
        nn.init.constant_(self.gate.bias, self.gate_bias)

    def forward(self, f: torch.Tensor, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        g = crop_to(torch.sigmoid(self.gate(x)), f)
        return (g * f if self.exclusive else f) + (1 - g) * s


class DropoutJoin(Join):
    """``F + dropout_p(s)`` (inverted dropout: the kept shortcut is scaled by ``1 / (1 - p)`` in training)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, f: torch.Tensor, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return f + F.dropout(s, self.p, self.training)


def join(kind: str, in_ch: int, out_ch: int, point: Any, scale: float, gate_bias: float, dropout: float) -> Join:
    """The join of ``model.shortcut=kind``; ``point(in_ch, out_ch, bias)`` makes a gate's 1x1 layer."""
    if kind == "scaled":
        return ScaledJoin(scale)
    if kind in ("gated", "shortcut_gated"):
        return GatedJoin(point(in_ch, out_ch, bias=True), gate_bias, exclusive=kind == "gated")
    if kind == "dropout":
        return DropoutJoin(dropout)
    return Join()


# ---------------------------------------------------------------- stochastic depth
class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training the whole branch is kept for the batch with
    probability ``survival`` (one draw per block and step), in eval it is multiplied by ``survival`` (its
    expectation). The skeleton sets ``survival = 1 - l / L * rate`` for the ``l``-th of ``L`` residual
    blocks (:func:`~skipbench.models.blocks.place_blocks`: the paper's linear decay, to ``1 - rate``).

    The draw of training forward ``n`` of block ``l`` comes from stream ``(n, l)`` of purpose
    ``drop_path`` under the run's ``seed``; ``n`` is saved with the model (its extra state), so a
    resumed run draws what the uninterrupted one would have.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed, self.survival, self.index, self.calls = int(seed), 1.0, 0, 0

    def keep(self) -> bool:
        """Whether this forward computes the branch (always in eval; draws once per training forward)."""
        if not self.training or self.survival >= 1.0:
            return True
        u = torch.rand((), generator=seeds.generator(self.seed, "drop_path", (self.calls, self.index)))
        self.calls += 1
        return bool(u < self.survival)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f if self.training or self.survival >= 1.0 else f * self.survival

    def get_extra_state(self) -> dict[str, int]:
        return {"calls": self.calls}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.calls = int(state["calls"])

    def extra_repr(self) -> str:
        return f"survival={self.survival:.3f}, index={self.index}"
