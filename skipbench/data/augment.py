"""Training-time augmentation on tensors, on the run's device: random crops with zero padding and
horizontal flips (He et al. 2016a, Sec. 4.2: 4 px padding, a random 32 x 32 crop, a random flip).

One gather per batch does both (no per-sample Python): the crop is a window of the padded batch at a
random offset, the flip reverses that window's columns. The offsets and flips of training step ``k``
are drawn from stream ``k`` of purpose ``augment`` under the run's seed (:mod:`skipbench.seeds`), on the
CPU (the same draws on every device), so a resumed run augments exactly as an uninterrupted one.
Masks (segmentation) get the same crop and flip as their images; labels are untouched. Evaluation
never augments: the loop calls this on training batches only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import seeds
from ..errors import ConfigError
from .base import Split


def check_augment(crop_padding: int, flip: bool) -> None:
    if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
        raise ConfigError(f"augment.crop_padding={crop_padding}: must be an integer >= 0 (pixels; 4 in He et al.)")


def draws(n: int, crop_padding: int, flip: bool, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step ``step``'s ``(dy [n], dx [n], flipped [n] bool)``: crop offsets in ``0..2p`` and flips."""
    g = seeds.generator(seed, "augment", step)
    offsets = torch.randint(0, 2 * crop_padding + 1, (2, n), generator=g)
    flipped = torch.rand(n, generator=g) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return offsets[0], offsets[1], flipped


def augment(batch: Split, seed: int, step: int, crop_padding: int = 0, flip: bool = False) -> Split:
    """``batch`` (images ``[B, C, H, W]``, masks ``[B, H, W]``) cropped and flipped as step ``step`` draws."""
    if crop_padding == 0 and not flip:
        return batch
    images = batch.images
    b, _, h, w = images.shape
    dy, dx, flipped = (t.to(images.device) for t in draws(b, crop_padding, flip, seed, step))
    cols = torch.arange(w, device=images.device)
    cols = torch.where(flipped[:, None], w - 1 - cols, cols) + dx[:, None]  # [B, W]: the window, reversed if flipped
    rows = torch.arange(h, device=images.device) + dy[:, None]  # [B, H]
    index = torch.arange(b, device=images.device)[:, None, None]
    p = (crop_padding,) * 4

    def window(x: torch.Tensor) -> torch.Tensor:  # [B, ..., H, W] padded -> the B windows
        if x.dim() == 3:
            return F.pad(x, p)[index, rows[:, :, None], cols[:, None, :]]
        # advanced indices around a slice put the batch dims first: [B, H, W, C] -> [B, C, H, W]
        return F.pad(x, p)[index, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()

    masks = None if batch.masks is None else window(batch.masks)
    return Split(window(images), masks, batch.labels)
