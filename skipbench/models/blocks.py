"""Conv blocks: the *short* skips. Every block maps ``[B, in_ch, H, W] -> [B, out_ch, H, W]``.

Each block is two 3x3 convolutions deep on its main path, so variants built from different blocks
have the same depth and widths; only what happens around the convolutions differs:

* ``plain``    -- conv-BN-ReLU, conv-BN-ReLU; no skip.
* ``residual`` -- ResNet basic block: ``relu(F(x) + P(x))``, ``P`` identity or a 1x1 projection.
* ``dense``    -- DenseNet block: each layer sees the concatenation of all earlier features and
  returns only its *new* ``growth`` channels; the block concatenates them and a 1x1 transition
  maps ``in_ch + n*growth`` channels to ``out_ch``. (The skeleton makes a whole stage one dense
  block of ``2 * blocks_per_level`` layers, so deeper stages mean longer dense connectivity.)
* ``highway``  -- gated skip ``y = T(x) * H(x) + (1 - T(x)) * x``; the gate bias starts negative so a
  fresh block mostly carries its input (Srivastava et al., 2015).

A new short skip is one class here (a :class:`Block` subclass; override :meth:`Block.stage` if it
takes a knob of :class:`BlockOptions`) plus one line in :data:`BLOCKS`.

Lesions (Veit et al. 2016): every unit a lesion can delete -- a plain, residual or highway block, one
layer of a dense block -- carries a ``lesioned`` flag (off by default; :mod:`skipbench.analyze.lesion`
switches it). A lesioned unit keeps what it carries and drops its branch: residual ``relu(P(x))``,
highway the carried ``x``, a dense layer contributes zeros, a plain block becomes the identity where
its shape allows (:meth:`Lesionable.lesion_blocker` says why not elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn

from ..errors import ConfigError

BlockFactory = Callable[[int, int], nn.Module]


@dataclass(frozen=True)
class BlockOptions:
    """The skeleton's block knobs; each block takes the ones it uses (:meth:`Block.stage`)."""

    padding: int = 1  # 1 = padded 3x3 convs, 0 = valid convs
    blocks_per_level: int = 1
    zero_init_residual: bool = False
    highway_gate_bias: float = -2.0
    dense_growth: int | None = None


class Lesionable:
    """A unit a lesion study can delete at test time: ``lesioned`` switches its forward to the carried path."""

    lesioned: bool = False
    lesion_unit: bool = True  # False: a container whose parts are the units (a dense block)

    def lesion_blocker(self) -> str | None:
        """Why this unit cannot be deleted (one phrase), or None if it can."""
        return None


def _shrink(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Centre-crop ``pixels`` from each side of ``x: [B, C, H, W]`` (what two valid 3x3 convs take: 2)."""
    return x if pixels == 0 else x[..., pixels:-pixels, pixels:-pixels]


class Block(Lesionable, nn.Module):
    """A block ``[B, in_ch, H, W] -> [B, out_ch, H', W']``; says how the skeleton builds a stage of it."""

    @classmethod
    def stage(cls, o: BlockOptions) -> tuple[BlockFactory, int]:
        """``(make_block(in_ch, out_ch), blocks in a stage)``: by default ``blocks_per_level`` blocks."""
        return partial(cls, padding=o.padding), o.blocks_per_level


def conv3x3(in_ch: int, out_ch: int, padding: int = 1) -> nn.Conv2d:
    # No bias: every conv is followed by a norm layer, which has its own shift.
    return nn.Conv2d(in_ch, out_ch, 3, padding=padding, bias=False)


def crop_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Centre-crop ``x`` to ``ref``'s spatial size (a no-op with padded convs)."""
    dh, dw = x.shape[-2] - ref.shape[-2], x.shape[-1] - ref.shape[-1]
    if dh == 0 and dw == 0:
        return x
    return x[..., dh // 2 : dh // 2 + ref.shape[-2], dw // 2 : dw // 2 + ref.shape[-1]]


def projection(in_ch: int, out_ch: int) -> nn.Module:
    """Identity when shapes agree, else a 1x1 conv + BN (ResNet option B)."""
    if in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))


class PlainBlock(Block):
    """Two conv-BN-ReLU layers, nothing around them."""

    def __init__(self, in_ch: int, out_ch: int, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, padding)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = conv3x3(out_ch, out_ch, padding)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.in_ch, self.out_ch, self.padding = in_ch, out_ch, padding

    def lesion_blocker(self) -> str | None:
        if self.in_ch != self.out_ch:
            return f"changes channels {self.in_ch} -> {self.out_ch}: no identity replaces it"
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lesioned:  # the identity; with valid convs cropped as the two convs would have
            return _shrink(x, 2 * (1 - self.padding))
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))


class ResidualBlock(Block):
    """ResNet basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    ``zero_init_residual`` starts ``bn2.weight`` at 0 so the block begins as the identity
    (Goyal et al., 2017); off by default to compare variants from the same kind of init.
    """

    def __init__(self, in_ch: int, out_ch: int, zero_init_residual: bool = False, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, padding)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = conv3x3(out_ch, out_ch, padding)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = projection(in_ch, out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.zero_init_residual = zero_init_residual

    @classmethod
    def stage(cls, o: BlockOptions) -> tuple[BlockFactory, int]:
        return partial(cls, padding=o.padding, zero_init_residual=o.zero_init_residual), o.blocks_per_level

    def reset_skip_init(self) -> None:
        if self.zero_init_residual:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lesioned:  # the branch F is gone; the shortcut (identity or projection) stays
            return self.relu(_shrink(self.shortcut(x), 2 * (1 - self.conv1.padding[0])))
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + crop_to(self.shortcut(x), out))


class DenseLayer(Lesionable, nn.Module):
    """BN-ReLU-conv3x3 producing only the ``growth`` new channels (the block concatenates)."""

    def __init__(self, in_ch: int, growth: int, padding: int = 1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_ch)
        self.conv = conv3x3(in_ch, growth, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lesioned:  # its new channels are zeros; the concatenated input passes on untouched
            p = 1 - self.conv.padding[0]
            return x.new_zeros(x.shape[0], self.conv.out_channels, x.shape[-2] - 2 * p, x.shape[-1] - 2 * p)
        # Not in-place: x is the shared concatenation that later layers read too.
        return self.conv(torch.relu(self.bn(x)))


class DenseBlock(Block):
    # Deleted layer by layer (its ``.layers.<i>``): the transition itself has no carried path.
    lesion_unit = False

    """DenseNet block of ``n_layers`` layers (default 2, matching the other blocks' depth).

    ``growth`` defaults to ``max(4, out_ch // n_layers)``, so the layers add about ``out_ch`` new
    channels in all (``out_ch // 2`` each for two layers); a 1x1 transition (BN-ReLU-conv) maps the
    concatenated ``in_ch + n_layers * growth`` channels back to ``out_ch``.
    """

    def __init__(
        self, in_ch: int, out_ch: int, n_layers: int = 2, growth: int | None = None, padding: int = 1
    ) -> None:
        super().__init__()
        growth = growth or max(4, out_ch // n_layers)
        self.layers = nn.ModuleList(DenseLayer(in_ch + i * growth, growth, padding) for i in range(n_layers))
        total = in_ch + n_layers * growth
        self.transition = nn.Sequential(
            nn.BatchNorm2d(total), nn.ReLU(inplace=True), nn.Conv2d(total, out_ch, 1, bias=False)
        )

    @classmethod
    def stage(cls, o: BlockOptions) -> tuple[BlockFactory, int]:
        # DenseNet grows depth inside one block (every layer sees all earlier ones), not by stacking
        # blocks: a stage is one dense block with the same conv count as the others' stages.
        return partial(cls, padding=o.padding, growth=o.dense_growth, n_layers=2 * o.blocks_per_level), 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            new = layer(torch.cat(features, dim=1))
            features = [crop_to(f, new) for f in features] + [new]  # valid convs shrink the new maps
        return self.transition(torch.cat(features, dim=1))


class HighwayBlock(Block):
    """Gated short skip ``y = T * H(x) + (1 - T) * x`` with ``T = sigmoid(conv1x1(x) + b)``.

    ``H`` is the plain block's two convolutions. When ``in_ch != out_ch`` the carried ``x`` is first
    projected (1x1 conv) so the gate mixes tensors of one shape. ``gate_bias`` (default -2) starts the
    gate near "carry": ``T ~ sigmoid(-2) ~ 0.12``.
    """

    def __init__(self, in_ch: int, out_ch: int, gate_bias: float = -2.0, padding: int = 1) -> None:
        super().__init__()
        self.carry = projection(in_ch, out_ch)
        self.transform = PlainBlock(out_ch, out_ch, padding)
        self.gate = nn.Conv2d(out_ch, out_ch, 1, bias=True)
        self.gate_bias = gate_bias

    @classmethod
    def stage(cls, o: BlockOptions) -> tuple[BlockFactory, int]:
        return partial(cls, padding=o.padding, gate_bias=o.highway_gate_bias), o.blocks_per_level

    def reset_skip_init(self) -> None:
        nn.init.constant_(self.gate.bias, self.gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.carry(x)
        if self.lesioned:  # the gated transform H is gone: only the carried input (as if T = 0)
            return _shrink(x, 2 * (1 - self.transform.padding))
        h = self.transform(x)
        x = crop_to(x, h)
        t = torch.sigmoid(self.gate(x))
        return t * h + (1 - t) * x


# The one place a block kind is named (``model.block``).
BLOCKS: dict[str, type[Block]] = {
    "plain": PlainBlock,
    "residual": ResidualBlock,
    "dense": DenseBlock,
    "highway": HighwayBlock,
}


def block_class(name: str) -> type[Block]:
    """The block called ``name``; a one-line error naming the known ones if there is none."""
    if name not in BLOCKS:
        raise ConfigError(f"block={name}: unknown block {name!r}; known: {', '.join(BLOCKS)}")
    return BLOCKS[name]


class Stage(nn.Sequential):
    """``n`` blocks at one resolution: the first maps ``in_ch -> out_ch``, the rest keep ``out_ch``."""

    def __init__(self, block: BlockFactory, in_ch: int, out_ch: int, n: int) -> None:
        super().__init__(*(block(in_ch if i == 0 else out_ch, out_ch) for i in range(n)))
