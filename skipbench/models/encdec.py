"""THE skeleton: encoder levels -> bottleneck -> decoder levels, with a swappable block and merge.

Shapes (``w = width``, ``d = depth``, level ``i`` has ``w * 2**i`` channels at ``H / 2**i``)::

    x [B, in, H, W]
    enc0: Stage(block)            -> [B, w,        H,      W     ]  --skip0--+
    enc1: maxpool, Stage(block)   -> [B, 2w,       H/2,    W/2   ]  --skip1--|--+
    ...                                                                     |  |
    bottleneck: maxpool, Stage    -> [B, 2^d w,    H/2^d,  W/2^d ]          |  |
    dec{d-1}: up (2x2 transposed conv) -> resize to skip{d-1} -> merge -> Stage   ...
    dec0:     up -> resize to skip0 -> merge(up, skip0) -> Stage -> [B, w, H, W]
    head: 1x1 conv                -> [B, out, H, W]

With ``head="classes"`` there is no decoder: the bottleneck is average-pooled and a linear layer
gives ``[B, num_classes]`` logits (long skips then have nothing to connect).

With ``padding=0`` (``unet_crop``) every 3x3 conv is unpadded as in the original U-Net: maps shrink
by 2 pixels per conv, the upsampled map keeps its size and the encoder features are centre-cropped
to it before concatenation, so the output is smaller than the input (:func:`valid_output_size`).

Every variant has the same levels, the same widths and the same number of blocks; the block
(``plain/residual/dense/highway``: the short skip) and the merge (``none/concat/add/crop_concat``:
the long skip) are parameters. Odd sizes work: the decoder resizes (pads or centre-crops) each
upsampled map to the encoder level's size, whether or not a skip is merged.

Modules are registered in forward order (``enc0 ... bottleneck, dec{d-1} ... dec0, head``) so
``named_modules()`` lists layers by depth, which is what the diagnostics rely on.

Initialisation (explicit, :meth:`reset_parameters`): every conv, transposed conv and linear weight
is Kaiming-normal (fan-in, ReLU gain), biases zero, norm weights one and shifts zero; then each
block applies its own skip init (``zero_init_residual``, the highway gate bias, ReZero's/SkipInit's
alpha = 0, Fixup's rescaled and zeroed layers); with Fixup the head starts at zero too (the paper's
zero-initialised classification layer).

Paper stems and strides (the CIFAR ResNets of He et al. 2016a, :mod:`.papers`): ``stem=True`` puts a
3x3 conv (+ norm, ReLU) from the image to ``width`` channels before ``enc0``'s blocks (``enc0.stem``, named
``00_enc0/conv0`` by the diagnostics); ``downsample="stride"`` drops the max-pools and lets the first block
of each deeper level stride its first conv (and its shortcut) by 2.

The block knobs (``norm``, ``residual_scale``, ``shortcut``, ``drop_path``, ...) are
:class:`~skipbench.models.blocks.BlockOptions`, checked by :func:`~skipbench.models.blocks.check_options`
and shared with the fully connected skeleton (:mod:`.mlp`). The merges have no norm (the add-merge's
projection is a bare 1x1 conv), so ``norm`` concerns the blocks and their projections.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import (BLOCKS, BlockOptions, Layers, PreActResidualBlock, Stage, block_class, check_options, final_activation,
                     place_blocks)
from .merges import match_size, merge_class


STRIDED_BLOCKS = ("plain", "residual", "preact_residual")  # blocks whose first conv takes a stride


class DecoderLevel(nn.Module):
    """Upsample ``[B, C_in, h, w] -> [B, C_out, 2h, 2w]``, merge with the skip, Stage.

    With padded convs the upsampled map is resized to the skip's size (odd inputs); with valid
    convs (``resize=False``) it keeps its size and the merge crops the larger skip instead.
    """

    def __init__(self, block, in_ch: int, skip_ch: int, out_ch: int, n_blocks: int, merge: str, resize: bool = True) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        self.merge = merge_class(merge)(out_ch, skip_ch)
        self.stage = Stage(block, self.merge.out_ch, out_ch, n_blocks)
        self.resize = resize

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        if self.resize:
            up = match_size(up, (skip.shape[-2], skip.shape[-1]))
        return self.stage(self.merge(up, skip))


def valid_output_size(size: int, depth: int, blocks_per_level: int) -> int:
    """Output size of the unpadded (``padding=0``) skeleton: each block loses 4 pixels (two 3x3
    convs), each pool halves (floor), each up-conv doubles. The original U-Net: 572 -> 388."""
    shrink = 4 * blocks_per_level
    for _ in range(depth):
        size = (size - shrink) // 2
    size -= shrink  # bottleneck
    for _ in range(depth):
        size = size * 2 - shrink
    return size


def odd_pool_level(size: int, depth: int, blocks_per_level: int) -> int | None:
    """With valid convs: the first level below which a 2x2 max-pool would misalign the crops, or None.

    A pool that floors an odd map drops its last row/column: the decoder's maps then cover the skip
    and the input one pixel short at the bottom/right (at that level; 2**level input pixels). The
    crops (skip and target: half the excess from the top-left, the rest from the bottom-right) absorb
    one pixel exactly, so only the first pool (level 0) may floor; a deeper one shifts every crop
    above it. Such sizes are refused; the original U-Net chose sizes where no pool floors.
    """
    for level in range(depth):
        size -= 4 * blocks_per_level
        if size % 2 and level > 0:
            return level
        size //= 2
    return None


def nearest_valid_sizes(size: int, depth: int, blocks_per_level: int) -> tuple[int | None, int | None]:
    """The nearest input sizes below and above ``size`` that valid convs accept (None: no such size)."""
    def ok(s: int) -> bool:
        return odd_pool_level(s, depth, blocks_per_level) is None and valid_output_size(s, depth, blocks_per_level) >= 1

    below = next((s for s in range(size - 1, 0, -1) if ok(s)), None)
    above = next(s for s in range(size + 1, size + 2 ** (depth + 1) + 8 * blocks_per_level * 2**depth) if ok(s))
    return below, above


def check_valid_size(size: int, depth: int, blocks_per_level: int) -> str | None:
    """Why valid convs refuse input ``size`` (one line naming the nearest sizes they accept), or None."""
    level = odd_pool_level(size, depth, blocks_per_level)
    if level is None:
        return None
    below, above = nearest_valid_sizes(size, depth, blocks_per_level)
    nearest = " or ".join(str(s) for s in (below, above) if s is not None)
    return (f"{size} px: with valid convs (padding=0) the 2x2 max-pool after level {level} would see an odd map "
            f"and drop a row, misaligning the crops above it; use {nearest} px")


def check_arguments(**args) -> None:
    """The skeleton's own ranges, each named as its argument (``width=0: must be an integer >= 1``)."""
    rules = {
        "depth": (lambda v: v >= 0, "must be an integer >= 0"),
        "width": (lambda v: v >= 1, "must be an integer >= 1"),
        "blocks_per_level": (lambda v: v >= 1, "must be an integer >= 1"),
        "padding": (lambda v: v in (0, 1), "must be 1 (padded convs) or 0 (valid convs)"),
        "head": (lambda v: v in ("pixels", "classes"), "unknown head; known: pixels, classes"),
        "dense_growth": (lambda v: v is None or v >= 1, "must be >= 1 or null"),
        "downsample": (lambda v: v in ("pool", "stride"), "unknown downsampling; known: pool, stride"),
    }
    for name, value in args.items():
        ok, rule = rules[name]
        if not ok(value):
            raise ConfigError(f"{name}={value}: {rule}")


class EncoderDecoder(nn.Module):
    """One encoder-decoder skeleton; skips chosen by ``long_skip`` and ``block``.

    Args:
        in_channels: image channels of the input.
        out_channels: channels of the output map (``head="pixels"``) or classes (``head="classes"``).
        depth: number of 2x downsamplings (the bottleneck is at ``H / 2**depth``).
        width: channels of the first level; level ``i`` has ``width * 2**i``.
        blocks_per_level: blocks in every stage (each block is two 3x3 convs deep); for ``dense``
            a stage is one dense block of ``2 * blocks_per_level`` layers (same conv count).
        long_skip: a name in :data:`~skipbench.models.merges.MERGES` (the long skip).
        block: a name in :data:`~skipbench.models.blocks.BLOCKS` (the short skip).
        head: ``pixels`` (dense output) or ``classes`` (pooled linear classifier, no decoder).
        padding: 1 = padded 3x3 convs (output size = input size); 0 = valid convs as in the original
            U-Net (output smaller, see :func:`valid_output_size`; long skips must crop: ``crop_concat``).
        zero_init_residual: start residual blocks as identity (last BN weight = 0).
        highway_gate_bias: initial bias of highway gates (negative = start near carry).
        dense_growth: channels each dense layer adds (default ``out_ch // 2``).
        norm, norm_groups, residual_scale, shortcut, shortcut_scale, shortcut_gate_bias, shortcut_dropout,
            stem: a 3x3 conv (+ norm, ReLU) from the image to ``width`` channels before ``enc0``'s blocks.
        downsample: ``pool`` (2x2 max-pool between levels) or ``stride`` (the first block of a level strides).
        drop_path, seed: the block knobs (:class:`~skipbench.models.blocks.BlockOptions`,
            :mod:`~skipbench.models.shortcuts`); ``seed`` is the run's, for stochastic depth's draws.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 3,
        width: int = 16,
        blocks_per_level: int = 1,
        long_skip: str = "concat",
        block: str = "plain",
        head: str = "pixels",
        zero_init_residual: bool = False,
        highway_gate_bias: float = -2.0,
        dense_growth: int | None = None,
        padding: int = 1,
        norm: str = "batch",
        norm_groups: int = 8,
        residual_scale: str = "none",
        shortcut: str = "identity",
        shortcut_scale: float = 0.5,
        shortcut_gate_bias: float = -6.0,
        shortcut_dropout: float = 0.5,
        drop_path: float = 0.0,
        seed: int = 0,
        stem: bool = False,
        downsample: str = "pool",
    ) -> None:
        super().__init__()
        check_arguments(depth=depth, width=width, blocks_per_level=blocks_per_level, padding=padding, head=head,
                        dense_growth=dense_growth, downsample=downsample)
        if downsample == "stride" and (block not in STRIDED_BLOCKS or padding != 1):
            raise ConfigError(f"downsample=stride: needs padded convs (padding=1) and a block whose first conv can "
                              f"stride ({', '.join(STRIDED_BLOCKS)}), not block={block}, padding={padding}")
        merge_class(long_skip, padding)  # a known merge that works with this padding
        # Valid convs: each stage loses 4 px per block (a dense stage as many, over 2x the layers).
        self.valid_blocks = blocks_per_level if padding == 0 else 0
        layers = Layers("conv", padding, norm, norm_groups)
        options = BlockOptions(padding, blocks_per_level, zero_init_residual, highway_gate_bias, dense_growth, layers,
                               residual_scale, shortcut, shortcut_scale, shortcut_gate_bias, shortcut_dropout, drop_path, seed)
        check_options(block, options)
        make_block, blocks_per_level = block_class(block).stage(options)  # blocks per stage
        self.residual_scale = residual_scale
        self.depth, self.head_kind = depth, head
        ch = [width * 2**i for i in range(depth + 1)]

        self.pool = nn.MaxPool2d(2) if downsample == "pool" else nn.Identity()
        stride = 2 if downsample == "stride" else 1
        first = in_channels
        stem_module = None
        if stem:  # pre-activation nets start with a bare conv: their first block normalises its input
            first = ch[0]
            norm_act = [] if BLOCKS[block] is PreActResidualBlock else [layers.norm_layer(ch[0]), nn.ReLU(inplace=True)]
            stem_module = nn.Sequential(layers.main(in_channels, ch[0]), *norm_act)
        self.enc_names = [f"enc{i}" for i in range(depth)]
        for i, name in enumerate(self.enc_names):
            self.add_module(name, Stage(make_block, first if i == 0 else ch[i - 1], ch[i], blocks_per_level,
                                        stride=1 if i == 0 else stride, stem=stem_module if i == 0 else None))
        self.bottleneck = Stage(make_block, ch[depth - 1] if depth else first, ch[depth], blocks_per_level,
                                stride=stride if depth else 1, stem=None if depth else stem_module)

        self.dec_names = [] if head == "classes" else [f"dec{i}" for i in reversed(range(depth))]
        for name in self.dec_names:
            i = int(name[3:])
            self.add_module(name, DecoderLevel(make_block, ch[i + 1], ch[i], ch[i], blocks_per_level, long_skip, padding == 1))
        self.post = final_activation(block, layers, ch[depth] if head == "classes" else ch[0])  # no weights: no level
        if head == "classes":
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch[depth], out_channels))
        else:
            self.head = nn.Conv2d(ch[0], out_channels, kernel_size=1)
        place_blocks(self.modules(), drop_path)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_skeleton(self, self.head, self.residual_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, in, H, W]`` -> ``[B, out, H, W]`` (pixels) or ``[B, num_classes]`` (classes)."""
        if self.valid_blocks and self.dec_names:  # crops are exact only if no pool floors an odd map
            for side in set(x.shape[-2:]):
                if why := check_valid_size(side, self.depth, self.valid_blocks):
                    raise ValueError(f"input {tuple(x.shape[-2:])}: {why}")
        skips = []
        for i, name in enumerate(self.enc_names):
            x = getattr(self, name)(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.bottleneck(self.pool(x) if self.depth else x)
        for name, skip in zip(self.dec_names, reversed(skips)):
            x = getattr(self, name)(x, skip)
        return self.head(self.post(x))


def init_skeleton(model: nn.Module, head: nn.Module, residual_scale: str) -> None:
    """Every skeleton's initialisation: Kaiming-normal weights, zero biases, unit norms, then each block's
    skip init (zero-init residual, ReZero/SkipInit/Fixup, highway gate bias) and Fixup's zero head.

    A model built on the meta device (the pre-run check: shapes only) has no values to set; the first
    random op there would load torch's Python meta kernels, 2-4 s of every run's start."""
    if any(p.is_meta for p in model.parameters()):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if hasattr(m, "reset_skip_init"):
            m.reset_skip_init()
    if residual_scale == "fixup":
        zero_head(head)


def zero_head(head: nn.Module) -> None:
    """Fixup's zero-initialised output layer (the last weight layer of ``head``)."""
    last = [m for m in head.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
    nn.init.zeros_(last.weight)
    if last.bias is not None:
        nn.init.zeros_(last.bias)
