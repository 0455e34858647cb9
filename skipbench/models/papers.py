"""The papers' own networks, exactly: built from the skeleton, its blocks and its merges with parameters.

* ``cifar_resnet`` / ``cifar_plain`` (He et al. 2016a, Sec. 4.2): a 3x3 stem conv to 16 channels, three
  stages of ``n`` basic blocks at 16 / 32 / 64 channels (32, 16, 8 px; the first block of stages 2 and 3
  strides), global average pool, a 10-way linear layer: ``6n + 2`` weight layers. The shortcut where shapes
  change is option A (``zero_pad``, no parameters) by default; ``shortcut=identity`` is option B (1x1
  projections), ``conv1x1`` option C. It *is* :class:`~skipbench.models.EncoderDecoder` (``depth=2``,
  ``width=16``, ``blocks_per_level=n``, ``stem``, ``downsample=stride``), so it has the shared layer names.
* ``unet2015`` (Ronneberger et al. 2015) is a registry line, not code: the skeleton at ``depth=4``,
  ``width=64``, valid convs, ``crop_concat``, no norm (572 x 572 -> 388 x 388).
* :class:`DenseNetBC` (Huang et al. 2017, Sec. 3): a 3x3 stem conv to ``2k`` channels, three dense blocks of
  ``(L - 4) / 6`` bottleneck layers (BN-ReLU-1x1 to ``4k``, BN-ReLU-3x3 to ``k``), each of the first two
  closed by the block's own 1x1 transition (compression ``theta``) and a 2x2 average pool; BN-ReLU, global
  average pool, linear. The blocks are :class:`~skipbench.models.blocks.DenseBlock`.
* :class:`RedNet` (Mao et al. 2016): ``depth / 2`` 3x3 convs then as many 3x3 transposed convs, ``width``
  channels, stride 1, ReLU after each but the last; every ``skip_every`` layers the conv features are
  added (``long_skip=add``, :class:`~skipbench.models.merges.AddMerge`) to the mirrored deconv's output
  before its ReLU; ``long_skip=none`` is the same network without them.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import DenseBlock, Layers, Stage
from .encdec import EncoderDecoder
from .merges import merge_class

CIFAR_N = range(1, 201)  # He et al. went up to n = 200 (ResNet-1202)


def _require(ok: bool, key: str, value, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value}: {rule}")


def _fixed(**given_and_only: tuple) -> None:
    """The skeleton keys a paper network does not vary (it has one block, one padding)."""
    for key, (value, only) in given_and_only.items():
        _require(value == only, key, value, f"this network is defined with {key}={only} only")


def cifar_net(
    in_channels: int = 3, out_channels: int = 10, n: int = 3, width: int = 16, block: str = "residual",
    head: str = "classes", shortcut: str | None = None, long_skip: str = "none", padding: int = 1, **knobs,
) -> EncoderDecoder:
    """He et al.'s CIFAR ResNet-(6n+2) (``block=residual``) or its plain twin (``block=plain``):
    ``[B, 3, 32, 32] -> [B, 10]``. ``shortcut``: None = option A (``zero_pad``) for residual blocks.
    ``knobs``: the other block knobs of :class:`EncoderDecoder`."""
    _require(isinstance(n, int) and n in CIFAR_N, "n", n,
             "must be an integer in 1..200 (6n+2 layers: n = 3, 5, 7, 9, 18 are ResNet-20, 32, 44, 56, 110)")
    _require(head == "classes", "head", head, "the CIFAR networks classify only: use task=classify")
    _require(long_skip == "none", "long_skip", long_skip, "the CIFAR networks have no decoder to skip to; use none")
    if shortcut is None:  # option A for the ResNets; a plain net has no shortcut to choose
        shortcut = "identity" if block == "plain" else "zero_pad"
    return EncoderDecoder(in_channels=in_channels, out_channels=out_channels, depth=2, width=width, blocks_per_level=n,
                          long_skip="none", block=block, head="classes", padding=padding, shortcut=shortcut,
                          stem=True, downsample="stride", **knobs)


class DenseNetBC(nn.Module):
    """DenseNet-BC for 32 px images: ``[B, C, H, W] -> [B, num_classes]`` (see the module docstring).

    Args:
        L: the paper's depth (weight layers): ``(L - 4) / 6`` bottleneck layers per block; 100 -> 16.
        k: growth rate (channels each layer adds).
        compression: theta, the fraction of channels a transition keeps (``floor(theta * m)``).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 10, L: int = 100, k: int = 12,
                 compression: float = 0.5, head: str = "classes", long_skip: str = "none", block: str = "dense",
                 padding: int = 1) -> None:
        super().__init__()
        _fixed(long_skip=(long_skip, "none"), block=(block, "dense"), padding=(padding, 1))
        _require(isinstance(L, int) and L >= 10 and (L - 4) % 6 == 0, "L", L,
                 "must be 6m + 4 with m >= 1 (DenseNet-BC: 100, 190, 250)")
        _require(k >= 1, "k", k, "must be an integer >= 1 (the growth rate; 12, 24, 40 in the paper)")
        _require(0 < compression <= 1, "compression", compression, "must be in (0, 1] (the paper's theta: 0.5)")
        _require(head == "classes", "head", head, "DenseNet-BC classifies only: use task=classify")
        layers, per_block = Layers("conv", 1, "batch"), (L - 4) // 6
        dense = partial(DenseBlock, n_layers=per_block, growth=k, layers=layers, bottleneck=4 * k)
        stem = layers.main(in_channels, 2 * k, bias=False)  # a bare conv: each dense layer normalises its input
        ch = 2 * k
        for i, name in enumerate(("enc0", "enc1")):
            out = int(compression * (ch + per_block * k))  # floor(theta * m), as the paper's Torch code
            self.add_module(name, Stage(dense, ch, out, 1, stem=stem if i == 0 else None))
            ch = out
        self.pool = nn.AvgPool2d(2)
        self.bottleneck = Stage(dense, ch, None, 1)  # the last block: no transition
        ch = self.bottleneck[0].out_ch
        self.post = nn.Sequential(layers.norm_layer(ch), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, out_channels))
        for m in self.modules():  # as the paper's code: He init for convs, BN at (1, 0), zero linear bias
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, C, H, W]`` -> ``[B, num_classes]``."""
        x = self.pool(self.enc1(self.pool(self.enc0(x))))
        return self.head(self.post(self.bottleneck(x)))


class RedNet(nn.Module):
    """RED-Net (Mao et al. 2016): ``[B, C, H, W] -> [B, C_out, H, W]`` (see the module docstring).

    Args:
        depth: weight layers, even: ``depth / 2`` convs + ``depth / 2`` deconvs (RED10, RED20, RED30).
        width: feature maps of every hidden layer (128).
        skip_every: a symmetric skip from every ``skip_every``-th conv to its mirrored deconv.
        long_skip: ``add`` (the paper's element-wise sum) or ``none`` (the same net without skips).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 30, width: int = 128,
                 skip_every: int = 2, long_skip: str = "add", head: str = "pixels", block: str = "plain",
                 padding: int = 1) -> None:
        super().__init__()
        _fixed(block=(block, "plain"), padding=(padding, 1))
        _require(isinstance(depth, int) and depth >= 2 and depth % 2 == 0, "depth", depth,
                 "must be an even integer >= 2 (depth / 2 convs + depth / 2 deconvs; RED30: 30)")
        _require(width >= 1, "width", width, "must be an integer >= 1")
        _require(skip_every >= 1, "skip_every", skip_every, "must be an integer >= 1")
        _require(long_skip in ("add", "none"), "long_skip", long_skip,
                 "RED-Net's symmetric skips add (add) or are absent (none)")
        _require(head == "pixels", "head", head, "RED-Net restores images: use task=denoise or reconstruct")
        half = depth // 2
        self.encoder = nn.ModuleList(nn.Conv2d(in_channels if i == 0 else width, width, 3, padding=1) for i in range(half))
        self.decoder = nn.ModuleList(nn.ConvTranspose2d(width, out_channels if j == half - 1 else width, 3, padding=1)
                                     for j in range(half))
        # Conv i (1-based) mirrors the output of deconv half - i; skips from conv skip_every, 2 * skip_every, ...
        self.skip_from = {half - 1 - i: i - 1 for i in range(skip_every, half, skip_every)}  # deconv index -> conv index
        self.merges = nn.ModuleDict({str(j): merge_class(long_skip)(width, width) for j in self.skip_from})
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, C, H, W]`` -> ``[B, C_out, H, W]``."""
        features = []
        for conv in self.encoder:
            x = self.relu(conv(x))
            features.append(x)
        for j, deconv in enumerate(self.decoder):
            x = deconv(x)
            if j in self.skip_from:
                x = self.merges[str(j)](x, features[self.skip_from[j]])
            if j < len(self.decoder) - 1:
                x = self.relu(x)
        return x
