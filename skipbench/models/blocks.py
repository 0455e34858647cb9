"""Blocks: the *short* skips. Every block maps ``[B, in_ch, H, W] -> [B, out_ch, H, W]`` (conv skeleton)
or ``[B, in_ch] -> [B, out_ch]`` (the fully connected skeleton): :class:`Layers` says which layers it is
made of (3x3 convs or linear layers, and its norm), so each block is written once for both.

Each block is two layers deep on its main path, so variants built from different blocks have the same
depth and widths; only what happens around the layers differs:

* ``plain``    -- conv-BN-ReLU, conv-BN-ReLU; no skip.
* ``residual`` -- ResNet basic block: ``relu(F(x) + P(x))``, ``P`` identity or a 1x1 projection; its
  shortcut, residual scale and stochastic depth are parts handed in (:mod:`.shortcuts`).
* ``preact_residual`` -- full pre-activation (He et al. 2016b): ``x + conv(relu(bn(conv(relu(bn(x))))))``,
  the identity path untouched (no ReLU after the addition).
* ``dense``    -- DenseNet block: each layer sees the concatenation of all earlier features and
  returns only its *new* ``growth`` channels; the block concatenates them and a 1x1 transition
  maps ``in_ch + n*growth`` channels to ``out_ch``. (The skeleton makes a whole stage one dense
  block of ``2 * blocks_per_level`` layers, so deeper stages mean longer dense connectivity.)
* ``highway``  -- gated skip ``y = T(x) * H(x) + (1 - T(x)) * x``; the gate bias starts negative so a
  fresh block mostly carries its input (Srivastava et al., 2015).

``model.norm``: ``batch`` (BatchNorm), ``group`` (GroupNorm, ``gcd(norm_groups, channels)`` groups) or
``none`` (no norm module at all; the layers then get the biases the norm's shift provided).

A new short skip is one class here (a :class:`Block` subclass; override :meth:`Block.stage` if it
takes a knob of :class:`BlockOptions`) plus one line in :data:`BLOCKS`.

Lesions (Veit et al. 2016): every unit a lesion can delete -- a plain, residual or highway block, one
layer of a dense block -- carries a ``lesioned`` flag (off by default; :mod:`skipbench.analyze.lesion`
switches it). A lesioned unit keeps what it carries and drops its branch: residual ``relu(P(x))``,
highway the carried ``x``, a dense layer contributes zeros, a plain block becomes the identity where
its shape allows (:meth:`Lesionable.lesion_blocker` says why not elsewhere).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Iterable

import torch
from torch import nn

from ..errors import ConfigError
from . import shortcuts
from .shortcuts import DropPath, Join, ScalarBias, crop_to, fixup_factor

BlockFactory = Callable[[int, int], nn.Module]
NORMS = ("batch", "group", "none")


@dataclass(frozen=True)
class Layers:
    """The layers a block is made of: ``kind`` ``conv`` (3x3 convs, 1x1 for points, on ``[B, C, H, W]``) or
    ``linear`` (on ``[B, C]``), and the norm after each main-path layer (``batch | group | none``)."""

    kind: str = "conv"
    padding: int = 1
    norm: str = "batch"
    norm_groups: int = 8

    def main(self, in_ch: int, out_ch: int, bias: bool | None = None, stride: int = 1) -> nn.Module:
        """A main-path layer; it has a bias only without a norm after it (the norm has its own shift).
        ``stride=2``: the strided conv that opens a stage of a ResNet (``downsample=stride``)."""
        bias = self.norm == "none" if bias is None else bias
        if self.kind == "linear":
            return nn.Linear(in_ch, out_ch, bias=bias)
        return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=self.padding, bias=bias)

    def point(self, in_ch: int, out_ch: int, bias: bool | None = None, stride: int = 1) -> nn.Module:
        """A 1x1 conv (or a linear layer): projections, gates, transitions."""
        bias = self.norm == "none" if bias is None else bias
        if self.kind == "linear":
            return nn.Linear(in_ch, out_ch, bias=bias)
        return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=bias)

    def norm_layer(self, ch: int) -> nn.Module:
        if self.norm == "none":
            return nn.Identity()
        if self.norm == "group":  # gcd: a layer whose channels the knob does not divide still gets a norm
            return nn.GroupNorm(math.gcd(self.norm_groups, ch), ch)
        return nn.BatchNorm1d(ch) if self.kind == "linear" else nn.BatchNorm2d(ch)


def conv3x3(in_ch: int, out_ch: int, padding: int = 1) -> nn.Conv2d:
    # No bias: every conv is followed by a norm layer, which has its own shift.
    return nn.Conv2d(in_ch, out_ch, 3, padding=padding, bias=False)


@dataclass(frozen=True)
class BlockOptions:
    """The skeleton's block knobs; each block takes the ones it uses (:meth:`Block.stage`)."""

    padding: int = 1  # 1 = padded 3x3 convs, 0 = valid convs
    blocks_per_level: int = 1
    zero_init_residual: bool = False
    highway_gate_bias: float = -2.0
    dense_growth: int | None = None
    layers: Layers = field(default_factory=Layers)
    residual_scale: str = "none"
    shortcut: str = "identity"
    shortcut_scale: float = 0.5
    shortcut_gate_bias: float = -6.0
    shortcut_dropout: float = 0.5
    drop_path: float = 0.0
    seed: int = 0


def check_options(block: str, o: BlockOptions) -> None:
    """One-line errors for values out of range and for knobs the chosen block has nothing to apply to."""
    lay = o.layers
    rules = [
        (lay.norm in NORMS, "norm", lay.norm, f"unknown norm; known: {', '.join(NORMS)}"),
        (lay.norm_groups >= 1, "norm_groups", lay.norm_groups, "must be an integer >= 1"),
        (o.residual_scale in shortcuts.RESIDUAL_SCALES, "residual_scale", o.residual_scale,
         f"unknown residual scale; known: {', '.join(shortcuts.RESIDUAL_SCALES)}"),
        (o.shortcut in shortcuts.SHORTCUTS, "shortcut", o.shortcut, f"unknown shortcut; known: {', '.join(shortcuts.SHORTCUTS)}"),
        (0 <= o.drop_path < 1, "drop_path", o.drop_path, "must be in [0, 1): the last block's drop probability"),
        (0 <= o.shortcut_dropout < 1, "shortcut_dropout", o.shortcut_dropout, "must be in [0, 1)"),
    ]
    residual = block in ("residual", "preact_residual")
    needs = f"needs a residual branch (model.block=residual or preact_residual), not block={block}"
    rules += [
        (residual or o.residual_scale == "none", "residual_scale", o.residual_scale, needs),
        (residual or o.shortcut == "identity", "shortcut", o.shortcut, needs),
        (residual or o.drop_path == 0, "drop_path", o.drop_path, needs),
        (o.residual_scale != "fixup" or lay.norm == "none", "residual_scale", "fixup",
         f"Fixup replaces normalisation: use model.norm=none (not {lay.norm})"),
        (o.residual_scale != "fixup" or block == "residual", "residual_scale", "fixup",
         f"defined for the post-activation block (model.block=residual), not block={block}"),
        (not o.zero_init_residual or o.residual_scale == "none", "zero_init_residual", True,
         f"residual_scale={o.residual_scale} already starts each branch at 0; drop one of them"),
        (not (o.zero_init_residual and lay.norm == "none" and block == "residual"), "zero_init_residual", True,
         "with model.norm=none there is no norm weight to zero; use model.residual_scale=skipinit"),
    ]
    for ok, key, value, rule in rules:
        if not ok:
            raise ConfigError(f"{key}={value}: {rule}")


class Lesionable:
    """A unit a lesion study can delete at test time: ``lesioned`` switches its forward to the carried path."""

    lesioned: bool = False
    lesion_unit: bool = True  # False: a container whose parts are the units (a dense block)

    def lesion_blocker(self) -> str | None:
        """Why this unit cannot be deleted (one phrase), or None if it can."""
        return None


class Block(Lesionable, nn.Module):
    """A block ``[B, in_ch, ...] -> [B, out_ch, ...]``; says how the skeleton builds a stage of it."""

    @classmethod
    def stage(cls, o: BlockOptions) -> tuple[BlockFactory, int]:
        """``(make_block(in_ch, out_ch), blocks in a stage)``: by default ``blocks_per_level`` blocks."""
        return partial(cls, layers=o.layers), o.blocks_per_level


def _layers(layers: Layers | None, padding: int) -> Layers:
    return Layers(padding=padding) if layers is None else layers


def projection(in_ch: int, out_ch: int, layers: Layers | None = None, always: bool = False, stride: int = 1,
               zero_pad: bool = False) -> nn.Module:
    """Identity when shapes agree (unless ``always``), else a 1x1 conv + norm (ResNet option B), or with
    ``zero_pad`` the parameter-free option A (:class:`~skipbench.models.shortcuts.ZeroPadShortcut`)."""
    layers = layers or Layers()
    if in_ch == out_ch and stride == 1 and not always:
        return nn.Identity()
    if zero_pad and not always:
        return shortcuts.ZeroPadShortcut(in_ch, out_ch, stride)
    return nn.Sequential(layers.point(in_ch, out_ch, stride=stride), layers.norm_layer(out_ch))


class PlainBlock(Block):
    """Two conv-BN-ReLU layers, nothing around them."""

    def __init__(self, in_ch: int, out_ch: int, padding: int = 1, layers: Layers | None = None, stride: int = 1) -> None:
        super().__init__()
        layers = _layers(layers, padding)
        self.conv1 = layers.main(in_ch, out_ch, stride=stride)
        self.bn1 = layers.norm_layer(out_ch)
        self.conv2 = layers.main(out_ch, out_ch)
        self.bn2 = layers.norm_layer(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride

    def lesion_blocker(self) -> str | None:
        if self.in_ch != self.out_ch:
            return f"changes channels {self.in_ch} -> {self.out_ch}: no identity replaces it"
        if self.stride != 1:
            return f"downsamples (stride {self.stride}): no identity replaces it"
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lesioned:  # the identity; with valid convs cropped as the two convs would have
            return _cropped_like(x, self.conv1, self.conv2)
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))


class ResidualBlock(Block):
    """ResNet basic block: ``relu(join(drop(scale(F(x))), shortcut(x)))``, ``F = bn2(conv2(relu(bn1(conv1(x)))))``.

    With the defaults (identity join, no scale, no drop) that is ``relu(F(x) + P(x))``. The parts come
    from :mod:`.shortcuts`: ``join`` (``model.shortcut``), ``scale`` (``model.residual_scale``; ReZero also
    drops the ReLU after the addition), ``drop`` (stochastic depth). Fixup puts a scalar bias before each
    conv and activation of ``F`` (``bias1a``, ``bias1b``, ``bias2a``; ``scale`` holds its multiplier and
    last bias); the shortcut's projection reads ``x + bias1a`` as in the paper's code.

    ``zero_init_residual`` starts ``bn2.weight`` at 0 so the block begins as the identity
    (Goyal et al., 2017); off by default to compare variants from the same kind of init.
    """

    post_activation = True  # a ReLU after the addition (He et al. 2016a)
    branch_layers = 2  # Fixup's m

    def __init__(
        self, in_ch: int, out_ch: int, zero_init_residual: bool = False, padding: int = 1, layers: Layers | None = None,
        shortcut: str = "identity", residual_scale: str = "none", shortcut_scale: float = 0.5,
        shortcut_gate_bias: float = -6.0, shortcut_dropout: float = 0.5, seed: int = 0, stride: int = 1,
    ) -> None:
        super().__init__()
        layers = _layers(layers, padding)
        fixup = residual_scale == "fixup"
        bias = ScalarBias if fixup else nn.Identity
        conv_bias = False if fixup else None  # Fixup's scalar biases replace the convs' own
        self.bias1a, self.conv1, self.bn1, self.bias1b = bias(), layers.main(in_ch, out_ch, conv_bias, stride), \
            layers.norm_layer(out_ch), bias()
        self.bias2a, self.conv2, self.bn2 = bias(), layers.main(out_ch, out_ch, conv_bias), layers.norm_layer(out_ch)
        # He et al. 2016a's options: A zero_pad (free), B identity (a projection only where shapes change), C conv1x1
        self.shortcut = projection(in_ch, out_ch, layers, always=shortcut == "conv1x1", stride=stride,
                                   zero_pad=shortcut == "zero_pad")
        self.scale = shortcuts.residual_scale(residual_scale)
        self.drop = DropPath(seed)
        self.join = shortcuts.join(shortcut, in_ch, out_ch, layers.point, shortcut_scale, shortcut_gate_bias, shortcut_dropout)
        self.relu = nn.ReLU(inplace=True)
        self.zero_init_residual, self.residual_scale, self.fixup_branches = zero_init_residual, residual_scale, 1
        self.post = self.post_activation and residual_scale != "rezero"  # ReZero: x + alpha F(x), nothing after

    @classmethod
    def stage(cls, o: BlockOptions) -> tuple[BlockFactory, int]:
        return partial(cls, layers=o.layers, zero_init_residual=o.zero_init_residual, shortcut=o.shortcut,
                       residual_scale=o.residual_scale, shortcut_scale=o.shortcut_scale,
                       shortcut_gate_bias=o.shortcut_gate_bias, shortcut_dropout=o.shortcut_dropout,
                       seed=o.seed), o.blocks_per_level

    def place(self, index: int, total: int, drop_rate: float) -> None:
        """The skeleton numbers its residual blocks ``1..total`` in forward order: stochastic depth's
        linear decay of survival ``1 - index / total * drop_rate``, and Fixup's ``L = total``."""
        self.drop.index, self.drop.survival = index, 1.0 - index / total * drop_rate
        self.fixup_branches = total

    def reset_skip_init(self) -> None:
        if self.zero_init_residual:
            nn.init.zeros_(self.bn2.weight)
        if self.residual_scale == "fixup":  # He init scaled by L^(-1/(2m-2)); the branch's last layer 0
            with torch.no_grad():
                self.conv1.weight.mul_(fixup_factor(self.fixup_branches, self.branch_layers))
            nn.init.zeros_(self.conv2.weight)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """``F(x)``, before scale, drop and join."""
        out = self.relu(self.bias1b(self.bn1(self.conv1(x))))
        return self.bn2(self.conv2(self.bias2a(out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = self.bias1a(x)
        # The branch before the shortcut: layers run in registration order (the diagnostics' depth order).
        # lesioned (deleted at test time, Veit et al. 2016): F = 0, as a dropped branch
        f = self.drop(self.scale(self.branch(xb))) if not self.lesioned and self.drop.keep() else None
        out = self._join(f, self.shortcut(x if isinstance(self.shortcut, nn.Identity) else xb), x)
        return self.relu(out) if self.post else out

    def _join(self, f: torch.Tensor | None, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``join(f, s)``; ``f = None``: the branch was dropped for this step, F = 0 and nothing of it was
        computed (with valid convs the result is cropped as F's would have been)."""
        if f is None:
            return crop_to(self.join(torch.zeros_like(s), s, x), _cropped_like(x, self.conv1, self.conv2))
        return self.join(f, crop_to(s, f), x)


def _cropped_like(x: torch.Tensor, *convs: nn.Module) -> torch.Tensor:
    """The centre of ``x`` at the size ``convs`` give it (valid convs shrink it, strides divide it; a view,
    nothing computed): what a deleted branch's carried input is cropped to (crop_to's centre, so pixels
    stay aligned), and with a stride the output size only."""
    if x.dim() < 4:
        return x
    h, w = x.shape[-2], x.shape[-1]
    for c in convs:
        k, p, st = (getattr(c, a, (d,))[0] for a, d in (("kernel_size", 1), ("padding", 0), ("stride", 1)))
        h, w = (h + 2 * p - k) // st + 1, (w + 2 * p - k) // st + 1
    return crop_to(x, x.new_empty(0, 0, h, w))


class PreActResidualBlock(ResidualBlock):
    """Full pre-activation (He et al. 2016b, Fig. 4e): ``F(x) = conv2(relu(bn2(conv1(relu(bn1(x))))))`` and
    ``y = join(F(x), shortcut(x))`` with no ReLU after it: the identity path is untouched. A projection
    (channels change) reads the pre-activated ``relu(bn1(x))``, as in the paper's code.

    Its norms normalise the block's *input*: ``bn1`` has ``in_ch`` channels. ``zero_init_residual``
    zeroes ``conv2`` (no norm follows it). The skeleton adds the final BN-ReLU before the head.
    """

    post_activation = False

    def __init__(self, in_ch: int, out_ch: int, *args, **kwargs) -> None:
        super().__init__(in_ch, out_ch, *args, **kwargs)
        layers = kwargs.get("layers") or _layers(None, kwargs.get("padding", 1))
        self.bn1 = layers.norm_layer(in_ch)  # normalises the block's input

    def reset_skip_init(self) -> None:
        if self.zero_init_residual:
            nn.init.zeros_(self.conv2.weight)

    def preact(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn1(x))  # not in place: x is the identity path

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.bn2(self.conv1(self.preact(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.shortcut, nn.Identity):
            return super().forward(x)
        pre = self.preact(x)  # a projection reads the pre-activated input; F starts from it too
        f = (self.drop(self.scale(self.conv2(self.relu(self.bn2(self.conv1(pre))))))
             if not self.lesioned and self.drop.keep() else None)
        return self._join(f, self.shortcut(pre), x)


class DenseLayer(Lesionable, nn.Module):
    """BN-ReLU-conv3x3 producing only the ``growth`` new channels (the block concatenates).

    ``bottleneck=b``: DenseNet-B's BN-ReLU-conv1x1 to ``b`` channels first (Huang et al. 2017: ``b = 4k``).
    """

    def __init__(self, in_ch: int, growth: int, padding: int = 1, layers: Layers | None = None,
                 bottleneck: int | None = None) -> None:
        super().__init__()
        layers = _layers(layers, padding)
        self.bottleneck = None if bottleneck is None else nn.Sequential(
            layers.norm_layer(in_ch), nn.ReLU(), layers.point(in_ch, bottleneck, bias=layers.norm == "none"))
        self.bn = layers.norm_layer(bottleneck or in_ch)
        self.conv = layers.main(bottleneck or in_ch, growth, bias=layers.norm == "none")  # no norm follows it within the layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.lesioned:  # its new channels are zeros; the concatenated input passes on untouched
            ref = _cropped_like(x, self.conv)
            return ref.new_zeros(ref.shape[0], self.conv.out_channels, *ref.shape[2:])
        # Not in-place: x is the shared concatenation that later layers read too.
        if self.bottleneck is not None:
            x = self.bottleneck(x)
        return self.conv(torch.relu(self.bn(x)))


class DenseBlock(Block):
    # Deleted layer by layer (its ``.layers.<i>``): the transition itself has no carried path.
    lesion_unit = False

    """DenseNet block of ``n_layers`` layers (default 2, matching the other blocks' depth).

    ``growth`` defaults to ``max(4, out_ch // n_layers)``, so the layers add about ``out_ch`` new
    channels in all (``out_ch // 2`` each for two layers); a 1x1 transition (BN-ReLU-conv) maps the
    concatenated ``in_ch + n_layers * growth`` channels back to ``out_ch``. ``out_ch=None`` (DenseNet's
    last block): no transition, the block returns all ``in_ch + n_layers * growth`` channels (:attr:`out_ch`).
    ``bottleneck``: each layer's 1x1 bottleneck width (DenseNet-B; :class:`DenseLayer`).
    """

    def __init__(
        self, in_ch: int, out_ch: int | None, n_layers: int = 2, growth: int | None = None, padding: int = 1,
        layers: Layers | None = None, bottleneck: int | None = None,
    ) -> None:
        super().__init__()
        layers = _layers(layers, padding)
        growth = growth or max(4, (out_ch or in_ch) // n_layers)
        self.layers = nn.ModuleList(DenseLayer(in_ch + i * growth, growth, layers=layers, bottleneck=bottleneck)
                                    for i in range(n_layers))
        total = in_ch + n_layers * growth
        self.out_ch = total if out_ch is None else out_ch
        self.transition = nn.Identity() if out_ch is None else nn.Sequential(
            layers.norm_layer(total), nn.ReLU(inplace=True), layers.point(total, out_ch, bias=layers.norm == "none")
        )

    @classmethod
    def stage(cls, o: BlockOptions) -> tuple[BlockFactory, int]:
        # DenseNet grows depth inside one block (every layer sees all earlier ones), not by stacking
        # blocks: a stage is one dense block with the same conv count as the others' stages.
        return partial(cls, layers=o.layers, growth=o.dense_growth, n_layers=2 * o.blocks_per_level), 1

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

    def __init__(self, in_ch: int, out_ch: int, gate_bias: float = -2.0, padding: int = 1,
                 layers: Layers | None = None) -> None:
        super().__init__()
        layers = _layers(layers, padding)
        self.carry = projection(in_ch, out_ch, layers)
        self.transform = PlainBlock(out_ch, out_ch, layers=layers)
        self.gate = layers.point(out_ch, out_ch, bias=True)
        self.gate_bias = gate_bias

    @classmethod
    def stage(cls, o: BlockOptions) -> tuple[BlockFactory, int]:
        return partial(cls, layers=o.layers, gate_bias=o.highway_gate_bias), o.blocks_per_level

    def reset_skip_init(self) -> None:
        nn.init.constant_(self.gate.bias, self.gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.carry(x)
        if self.lesioned:  # the gated transform H is gone: only the carried input (as if T = 0)
            return _cropped_like(x, self.transform.conv1, self.transform.conv2)
        h = self.transform(x)
        x = crop_to(x, h)
        t = torch.sigmoid(self.gate(x))
        return t * h + (1 - t) * x


# The one place a block kind is named (``model.block``).
BLOCKS: dict[str, type[Block]] = {
    "plain": PlainBlock,
    "residual": ResidualBlock,
    "preact_residual": PreActResidualBlock,
    "dense": DenseBlock,
    "highway": HighwayBlock,
}


def block_class(name: str) -> type[Block]:
    """The block called ``name``; a one-line error naming the known ones if there is none."""
    if name not in BLOCKS:
        raise ConfigError(f"block={name}: unknown block {name!r}; known: {', '.join(BLOCKS)}")
    return BLOCKS[name]


def place_blocks(modules: Iterable[nn.Module], drop_rate: float) -> int:
    """Number the residual blocks among ``modules`` (forward order) ``1..L`` and tell each its place
    (stochastic depth's survival, Fixup's ``L``); returns ``L``."""
    residual = [m for m in modules if isinstance(m, ResidualBlock)]
    for i, m in enumerate(residual, start=1):
        m.place(i, len(residual), drop_rate)
    return len(residual)


def final_activation(block: str, layers: Layers, ch: int) -> nn.Module:
    """What a skeleton applies before its head: pre-activation nets end with norm-ReLU (He et al. 2016b),
    every other block already ends with an activation."""
    if BLOCKS[block] is PreActResidualBlock:
        return nn.Sequential(layers.norm_layer(ch), nn.ReLU())
    return nn.Identity()


class Stage(nn.Sequential):
    """``n`` blocks at one resolution: the first maps ``in_ch -> out_ch``, the rest keep ``out_ch``.

    ``stride=2``: the first block downsamples itself (a ResNet stage's strided conv and shortcut), in
    place of the skeleton's max-pool. ``stem``: a module run before the blocks (the network's first conv),
    registered as ``stem`` so the diagnostics call its conv the level's ``conv0``.
    """

    def __init__(self, block: BlockFactory, in_ch: int, out_ch: int, n: int, stride: int = 1,
                 stem: nn.Module | None = None) -> None:
        first = {"stride": stride} if stride != 1 else {}  # blocks without a stride argument stay callable as before
        blocks = [(str(i), block(in_ch if i == 0 else out_ch, out_ch, **(first if i == 0 else {}))) for i in range(n)]
        super().__init__(OrderedDict(([("stem", stem)] if stem is not None else []) + blocks))
