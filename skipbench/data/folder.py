"""The user's own images: a folder of PNG/JPEG/BMP files, cut into fixed-size crops.

Layout::

    root/                      root/
      cats/001.jpg               001.png
      cats/more/002.jpg          002.png      (flat: no labels)
      dogs/003.png
    masks/                     (default: a ``masks`` folder next to root; or the ``masks`` argument)
      cats/001.png             (same relative path as the image, always .png)
      ...

Images are found recursively (hidden files and folders are skipped, and so is the masks folder if
it lies inside root). When root holds no images directly and its immediate sub-folders holding
images are two or more, those sub-folders are the classes, labelled in sorted order of their
names; otherwise there are no labels. Sub-folders without images are ignored.

Masks are single-channel PNGs (mode L, P or I) whose pixel values are class ids; 0 is taken as
background and ``seg_classes`` runs up to the largest id found in any mask ("background", "1",
..., "K"). When a masks folder is used, every image needs its mask, of the same size.

Train/val split: by a hash of each image's relative path, so an image stays on its side whatever
the seed and whatever other images are added (with at least one image on each side). Train holds
``crops_per_image`` random crops of every train image, drawn from a generator seeded by ``seed``
and the path; val holds one centre crop of every val image. Images whose short side is below
``crop`` are first resized up (bilinear; masks nearest) so that the short side equals ``crop``.
EXIF orientation is applied, so crops are upright as image viewers show them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import ImageData, Split
from .download import DataError, one_line

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_MASK_MODES = ("L", "P", "1", *_SIXTEEN_BIT)


def _scan(root: Path, skip: Path | None) -> list[Path]:
    """Image paths relative to ``root``, sorted, skipping hidden entries and the ``skip`` folder."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (skip is None or (here / d).resolve() != skip)
        )
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in EXTENSIONS:
                found.append((here / name).relative_to(root))
    return sorted(found, key=lambda p: p.as_posix())


def _unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) for ``text`` (the same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def _seed_for(seed: int, rel: Path) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{rel.as_posix()}".encode()).digest()[:8], "big") >> 1


def _read_image(path: Path, channels: int) -> tuple[torch.Tensor, float]:
    """``[C, H, W]`` integer tensor and the value of white (255, or 65535 for 16-bit files)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in _SIXTEEN_BIT:  # Pillow's convert("L") would clip these instead of scaling
                arr, white = np.asarray(img).astype(np.int32)[..., None], 65535.0
                arr = np.repeat(arr, channels, axis=2)
            else:
                arr, white = np.asarray(img.convert("L" if channels == 1 else "RGB")), 255.0
                arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
    except Exception as ex:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise DataError(f"{path}: cannot read image ({one_line(ex)}); the file is corrupt or truncated") from None
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()), white


def _read_mask(path: Path, image_path: Path, hw: tuple[int, int]) -> torch.Tensor:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            mode, arr = img.mode, np.asarray(img)
    except Exception as ex:
        raise DataError(f"{path}: cannot read mask ({one_line(ex)}); the file is corrupt or truncated") from None
    if mode not in _MASK_MODES:
        raise DataError(
            f"{path}: a mask must be single-channel with class ids as pixels (mode L, P or I), found mode {mode}"
        )
    if arr.shape != hw:
        raise DataError(f"{path}: mask is {arr.shape[1]}x{arr.shape[0]} but image {image_path} is {hw[1]}x{hw[0]}")
    mask = torch.from_numpy(arr.astype(np.int64))
    if mask.numel() and mask.min() < 0:
        raise DataError(f"{path}: negative class id {int(mask.min())}")
    return mask


def _upscale(x: torch.Tensor, m: torch.Tensor | None, crop: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float image (and mask) resized so that the short side is ``crop``."""
    h, w = x.shape[-2:]
    scale = crop / min(h, w)
    size = (max(crop, round(h * scale)), max(crop, round(w * scale)))
    x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0].clamp_(0.0, 1.0)
    if m is not None:
        m = F.interpolate(m[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
    return x, m


def folder(
    root: str,
    crop: int = 64,
    val_fraction: float = 0.1,
    crops_per_image: int = 8,
    seed: int = 0,
    channels: int = 3,
    masks: str | None = None,
) -> ImageData:
    """Crops of the images under ``root`` (see the module docstring for layout and rules)."""
    what = "folder"
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 1:
        raise DataError(f"{what}: crop={crop!r} must be a positive integer (pixels)")
    if isinstance(crops_per_image, bool) or not isinstance(crops_per_image, int) or crops_per_image < 1:
        raise DataError(f"{what}: crops_per_image={crops_per_image!r} must be a positive integer")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"{what}: val_fraction={val_fraction!r} must be between 0 and 1 (exclusive)")
    if channels not in (1, 3):
        raise DataError(f"{what}: channels={channels!r} must be 1 (grey) or 3 (RGB)")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"{what}: root={root} is not a folder")
    base = base.resolve()

    if masks is not None:
        mask_dir: Path | None = Path(masks).expanduser().resolve()
        if not mask_dir.is_dir():
            raise DataError(f"{what}: masks={masks} is not a folder")
    else:
        mask_dir = base.parent / "masks"
        if not mask_dir.is_dir() or mask_dir == base:
            mask_dir = None

    rels = _scan(base, mask_dir)
    if not rels:
        raise DataError(f"{what}: no images ({', '.join(EXTENSIONS)}, any case) found under {base}")
    if len(rels) < 2:
        raise DataError(f"{what}: only 1 image under {base}; need at least 2 (one for train, one for val)")

    groups = sorted({r.parts[0] for r in rels if len(r.parts) > 1})
    classes = groups if len(groups) >= 2 and all(len(r.parts) > 1 for r in rels) else []

    if mask_dir is not None:
        lacking = [mask_dir / r.with_suffix(".png") for r in rels if not (mask_dir / r.with_suffix(".png")).is_file()]
        if lacking:
            raise DataError(
                f"{what}: {len(lacking)} of {len(rels)} images have no mask in {mask_dir} (first: {lacking[0]}); "
                f"each image needs a PNG mask at the same relative path"
            )

    # Split by path hash; make sure neither side is empty.
    order = sorted(rels, key=lambda r: _unit_hash(r.as_posix()))
    n_val = sum(_unit_hash(r.as_posix()) < val_fraction for r in rels)
    n_val = min(max(n_val, 1), len(rels) - 1)
    val_set = set(order[:n_val])

    train_parts: list[tuple[torch.Tensor, torch.Tensor | None, int]] = []
    val_parts: list[tuple[torch.Tensor, torch.Tensor | None, int]] = []
    max_id = 0
    for rel in rels:
        path = base / rel
        raw, white = _read_image(path, channels)
        h, w = raw.shape[-2:]
        mask = None
        if mask_dir is not None:
            mask = _read_mask(mask_dir / rel.with_suffix(".png"), path, (h, w))
            max_id = max(max_id, int(mask.max()) if mask.numel() else 0)
        label = classes.index(rel.parts[0]) if classes else -1
        if min(h, w) < crop:
            x, mask = _upscale(raw.float() / white, mask, crop)
            raw, white = x, 1.0
            h, w = raw.shape[-2:]
        if rel in val_set:
            tops, lefts = [(h - crop) // 2], [(w - crop) // 2]
        else:
            g = torch.Generator().manual_seed(_seed_for(seed, rel))
            tops = torch.randint(0, h - crop + 1, (crops_per_image,), generator=g).tolist()
            lefts = torch.randint(0, w - crop + 1, (crops_per_image,), generator=g).tolist()
        parts = val_parts if rel in val_set else train_parts
        for top, left in zip(tops, lefts):
            x = (raw[:, top : top + crop, left : left + crop].float() / white).clamp_(0.0, 1.0)
            m = None if mask is None else mask[top : top + crop, left : left + crop].clone()
            parts.append((x, m, label))

    def assemble(parts: list[tuple[torch.Tensor, torch.Tensor | None, int]]) -> Split:
        return Split(
            images=torch.stack([p[0] for p in parts]),
            masks=torch.stack([p[1] for p in parts]) if mask_dir is not None else None,  # type: ignore[misc]
            labels=torch.tensor([p[2] for p in parts], dtype=torch.long) if classes else None,
        )

    return ImageData(
        name=what,
        train=assemble(train_parts),
        val=assemble(val_parts),
        channels=channels,
        seg_classes=["background", *(str(i) for i in range(1, max_id + 1))] if mask_dir is not None else [],
        classes=list(classes),
    )
