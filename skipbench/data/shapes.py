"""The built-in procedural data set: discs, squares, triangles and lines on a dark background.

Generated in memory, vectorised over images and shapes (a few ms per thousand 32x32 images), and
fully determined by ``seed``: the validation split comes from its own random stream, so it is the
same whatever the training seed or the size of the training split.

Each image comes with a per-pixel class mask (0 background, 1 disc, 2 square, 3 triangle, 4 line;
later shapes occlude earlier ones) and a per-image label (the shape class covering most pixels), so
one data set serves reconstruction, denoising, segmentation and classification.
"""

from __future__ import annotations

import math

import torch

from .. import seeds
from ..limits import check_fits
from .base import ImageData, Split, check_channels, check_positive

CLASSES = ("background", "disc", "square", "triangle", "line")


def _shape_mask(kind: int, cy, cx, r, angle, yy, xx) -> torch.Tensor:
    """Boolean masks ``[P, H, W]`` of P shapes of one ``kind``; parameters are ``[P, 1, 1]``."""
    dy, dx = yy - cy, xx - cx
    if kind == 1:  # disc
        return dx * dx + dy * dy <= r * r
    cos, sin = torch.cos(angle), torch.sin(angle)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos  # coordinates in the shape's rotated frame
    if kind == 2:  # square
        return torch.maximum(u.abs(), v.abs()) <= r * 0.8
    if kind == 3:  # equilateral triangle: inside three half-planes at distance r/2 from the centre
        inside = u <= r * 0.5
        for a in (2 * math.pi / 3, 4 * math.pi / 3):
            inside &= u * math.cos(a) + v * math.sin(a) <= r * 0.5
        return inside
    return (v.abs() <= torch.clamp(r * 0.15, min=0.6)) & (u.abs() <= r * 1.2)  # line


def generate_shapes(
    n: int, size: int, channels: int, max_shapes: int, generator: torch.Generator, chunk: int = 256
) -> Split:
    """Make ``n`` images ``[n, channels, size, size]`` in [0, 1] with masks and labels."""
    images = torch.empty(n, channels, size, size)
    masks = torch.empty(n, size, size, dtype=torch.long)
    ar = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = ar.view(1, 1, size, 1), ar.view(1, 1, 1, size)
    for start in range(0, n, chunk):
        m, k = min(chunk, n - start), max_shapes
        rand = lambda *s: torch.rand(*s, generator=generator)  # noqa: E731
        present = torch.arange(k).view(1, k) < torch.randint(1, k + 1, (m, 1), generator=generator)
        kind = torch.randint(1, len(CLASSES), (m, k), generator=generator)
        r = size * (0.08 + 0.17 * rand(m, k))
        cy, cx = size * (0.1 + 0.8 * rand(m, k)), size * (0.1 + 0.8 * rand(m, k))
        angle = 2 * math.pi * rand(m, k)
        shape = torch.zeros(m, k, size, size, dtype=torch.bool)
        for c in range(1, len(CLASSES)):  # one kind at a time: only compute the masks we need
            sel = (kind == c) & present
            p = lambda t: t[sel].view(-1, 1, 1)  # noqa: E731
            shape[sel] = _shape_mask(c, p(cy), p(cx), p(r), p(angle), yy[0], xx[0])
        colour = 0.35 + 0.65 * rand(m, k, channels)
        background = 0.15 * rand(m, channels)

        img = background.view(m, channels, 1, 1).expand(m, channels, size, size).clone()
        mask = torch.zeros(m, size, size, dtype=torch.long)
        for j in range(k):  # painter's order: later shapes occlude earlier ones
            s = shape[:, j]
            img = torch.where(s.unsqueeze(1), colour[:, j].view(m, channels, 1, 1), img)
            mask = torch.where(s, kind[:, j].view(m, 1, 1), mask)
        images[start : start + m], masks[start : start + m] = img, mask

    counts = torch.stack([(masks == c).sum(dim=(1, 2)) for c in range(1, len(CLASSES))], dim=1)
    labels = counts.argmax(dim=1)  # dominant shape, 0..3 (disc, square, triangle, line)
    return Split(images=images, masks=masks, labels=labels)


def shapes(
    size: int = 32,
    channels: int = 1,
    train_size: int = 4096,
    val_size: int = 512,
    max_shapes: int = 4,
    seed: int = 0,
) -> ImageData:
    """The ``shapes`` data set: train and val splits, each from its own seeded stream."""
    for name, value in (("size", size), ("train_size", train_size), ("val_size", val_size), ("max_shapes", max_shapes)):
        check_positive("shapes", name, value)
    check_channels("shapes", channels)
    check_fits(f"shapes: {train_size + val_size:,} images of {channels}x{size}x{size} (size={size})",
               (train_size + val_size) * size * size * (4 * channels + 8),  # float images, long masks
               "the documented sizes are 32..128; lower dataset.size or dataset.train_size")

    def split(stream: int, n: int) -> Split:
        g = seeds.generator(seed, "data", stream)
        return generate_shapes(n, size, channels, max_shapes, g)

    return ImageData(
        name="shapes",
        train=split(1, train_size),
        val=split(2, val_size),
        channels=channels,
        seg_classes=list(CLASSES),
        classes=list(CLASSES[1:]),
    )
