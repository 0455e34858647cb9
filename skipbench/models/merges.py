"""Long-skip merges: how a decoder level combines its upsampled input with the encoder's features.

Every merge is called as ``merge(up, skip)`` with ``up: [B, C_up, H, W]`` (already resized to the
encoder level's size) and ``skip: [B, C_skip, H', W']``; ``out_channels(C_up, C_skip)`` tells the
decoder stage how many channels it receives. The skip is optional at call time (MONAI's ``UpCat``):
``none`` simply ignores it.

A new long skip is one class here (``__init__(up_ch, skip_ch)`` setting ``out_ch``; ``crops = True``
if it works with valid convs, whose skips are larger than the upsampled map) plus one line in
:data:`MERGES`.

A lesion (:mod:`skipbench.analyze.lesion`) drops one long-skip level by setting the merge's
``lesioned`` flag: the merge then sees zeros where the encoder's features were.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .blocks import Lesionable


def match_size(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Centre-crop or zero-pad ``x: [B, C, H, W]`` to spatial ``size`` (handles odd input sizes)."""
    dh, dw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if dh == 0 and dw == 0:
        return x
    # F.pad with negative amounts crops. An odd difference puts the extra row/column at the bottom/right
    # whether padding or cropping: that is where a floored max-pool dropped it, and how crop_to crops
    # the targets, so skip and target crops stay aligned.
    top, left = _before(dh), _before(dw)
    return F.pad(x, (left, dw - left, top, dh - top))


def _before(d: int) -> int:
    """Pixels padded (> 0) or cropped (< 0) before the content: half the difference, rounded towards zero."""
    return d // 2 if d >= 0 else -(-d // 2)


class NoMerge(Lesionable, nn.Module):
    """No long skip: everything must pass the bottleneck (plain autoencoder)."""

    crops = True  # nothing to align: works with valid convs

    def lesion_blocker(self) -> str | None:
        return "no long skip to drop"

    def __init__(self, up_ch: int, skip_ch: int) -> None:
        super().__init__()
        self.out_ch = up_ch

    def forward(self, up: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        return up


class ConcatMerge(Lesionable, nn.Module):
    """U-Net: ``cat([skip, up])``; the next conv learns how to mix. Channels ``C_skip + C_up``."""

    def __init__(self, up_ch: int, skip_ch: int) -> None:
        super().__init__()
        self.out_ch = up_ch + skip_ch

    def forward(self, up: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is None:
            return up
        return torch.cat([torch.zeros_like(skip) if self.lesioned else skip, up], dim=1)


class CropConcatMerge(ConcatMerge):
    """Original U-Net: centre-crop the (larger) encoder features to the decoder's size, then concat."""

    crops = True

    def forward(self, up: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is None:
            return up
        return super().forward(up, match_size(skip, (up.shape[-2], up.shape[-1])))


class AddMerge(Lesionable, nn.Module):
    """``up + P(skip)``: no extra parameters when channels agree, else a 1x1 projection ``P``."""

    def __init__(self, up_ch: int, skip_ch: int) -> None:
        super().__init__()
        self.out_ch = up_ch
        self.proj = nn.Identity() if up_ch == skip_ch else nn.Conv2d(skip_ch, up_ch, 1, bias=False)

    def forward(self, up: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        # Lesioned: the skip is zeros, and P (a bias-free 1x1 conv or the identity) maps zeros to zeros.
        return up if skip is None or self.lesioned else up + self.proj(skip)


# The one place a long-skip kind is named (``model.long_skip``).
MERGES: dict[str, type[nn.Module]] = {
    "none": NoMerge,
    "concat": ConcatMerge,
    "add": AddMerge,
    "crop_concat": CropConcatMerge,
}


def merge_class(name: str, padding: int = 1) -> type[nn.Module]:
    """The merge called ``name``; a one-line error naming the known ones (or, with valid convs,
    ``padding=0``, the ones that crop) if it cannot be used."""
    if name not in MERGES:
        raise ConfigError(f"long_skip={name}: unknown long skip {name!r}; known: {', '.join(MERGES)}")
    if padding == 0 and not getattr(MERGES[name], "crops", False):
        cropping = " or ".join(k for k, m in MERGES.items() if getattr(m, "crops", False))
        raise ConfigError(f"long_skip={name}: valid convs (padding=0) need long_skip {cropping}")
    return MERGES[name]
