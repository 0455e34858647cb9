"""Tensor helpers shared by the real-data readers: normalisation statistics, resizing, masks.

``channel_stats`` gives the per-channel mean and standard deviation of a split (compute it on the
training split and reuse it for validation). The other helpers turn raw ``uint8`` arrays into the
``[N, C, H, W]`` float images in [0, 1] that every :class:`~skipbench.data.base.Split` holds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 4096  # images converted at a time: bounds the float temporaries of a 60 000-image set


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) standard deviation of ``images`` ``[N, C, H, W]``.

    Chunk sums are added up in float64: accurate to ~1e-8 on 60 000 MNIST images, with no
    float64 copy of the whole set. A constant channel has std 0: clamp before dividing.
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"channel_stats needs images [N, C, H, W] with N >= 1, got shape {tuple(images.shape)}")
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], CHUNK):
        x = images[start : start + CHUNK].float()
        total += x.sum(dim=(0, 2, 3)).double()  # float32 within a chunk (pairwise sums), float64 across
        squares += x.square().sum(dim=(0, 2, 3)).double()
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    var = (squares / n - mean * mean).clamp_min(0.0)
    return mean.tolist(), var.sqrt().tolist()


def to_float_images(raw: torch.Tensor, size: int | None = None, scale: float = 255.0, what: str = "dataset",
                    mask_bytes: int = 0) -> torch.Tensor:
    """``uint8`` (or any numeric) images ``[N, C, H, W]`` -> float in [0, 1], optionally resized.

    ``size`` resizes to ``size x size`` with bilinear interpolation (antialiased when shrinking);
    ``None`` keeps the stored size. Refused before allocating when the result (plus ``mask_bytes`` a
    pixel for masks made from it) would not fit this machine's memory.
    """
    from ..limits import check_fits

    n, c, h, w = raw.shape
    out_h, out_w = (h, w) if size is None else (size, size)
    check_fits(f"{what}: {n:,} images of {c}x{out_h}x{out_w}" + (f" (size={size})" if size else ""),
               n * out_h * out_w * (4 * c + mask_bytes), "lower dataset.size, dataset.train_size or dataset.val_size")
    out = torch.empty(n, c, out_h, out_w)
    for start in range(0, n, CHUNK):
        x = raw[start : start + CHUNK].to(torch.float32) / scale
        if (out_h, out_w) != (h, w):
            shrink = out_h < h or out_w < w
            x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=shrink)
        out[start : start + CHUNK] = x.clamp_(0.0, 1.0)
    return out


def threshold_masks(images: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Masks ``[N, H, W]`` for single-object images: ``label + 1`` where the (first) channel is
    brighter than ``threshold``, 0 (background) elsewhere."""
    return torch.where(images[:, 0] > threshold, (labels + 1).view(-1, 1, 1), 0).long()
