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

from .. import seeds
from ..limits import check_classes, check_fits, check_pixels
from ..run_folder import file_kind, is_regular
from .base import ImageData, Split, check_channels, check_fraction, check_positive
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
                if not is_regular(here / name):  # a FIFO named x.png would block the reader for ever
                    raise DataError(f"folder: {here / name} is not a regular file ({file_kind(here / name)}); "
                                    "move it out of root")
                found.append((here / name).relative_to(root))
    return sorted(found, key=lambda p: p.as_posix())


def _unit_hash(rel: Path) -> float:
    """A deterministic number in [0, 1) for a relative path (the same on every machine and run)."""
    return int.from_bytes(_digest(rel)[:8], "big") / 2.0**64


def _path_key(rel: Path) -> int:
    """A file's stream index for its crops: the same on every machine, whatever else the folder holds."""
    return int.from_bytes(_digest(rel)[:8], "big") >> 1


def _digest(rel: Path) -> bytes:
    # the name's bytes as on disk: a UTF-8 name hashes as its text always did, a non-UTF-8 one (read
    # with surrogate escapes) hashes too instead of failing to encode
    return hashlib.sha256(os.fsencode(rel.as_posix())).digest()


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
    size = _upscaled_size(*x.shape[-2:], crop)
    x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0].clamp_(0.0, 1.0)
    if m is not None:
        m = F.interpolate(m[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
    return x, m


def _upscaled_size(h: int, w: int, crop: int) -> tuple[int, int]:
    """``(h, w)`` scaled so that the short side is ``crop``."""
    scale = crop / min(h, w)
    return max(crop, round(h * scale)), max(crop, round(w * scale))


Crop = tuple[torch.Tensor, "torch.Tensor | None", int]  # image [C, crop, crop], mask [crop, crop], label


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
    check_positive(what, "crop", crop, " (pixels)")
    check_positive(what, "crops_per_image", crops_per_image)
    check_fraction(what, "val_fraction", val_fraction)
    check_channels(what, channels)
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"{what}: root={root} is not a folder")
    base = base.resolve()
    mask_dir = _mask_folder(base, masks)
    rels = _image_paths(base, mask_dir)
    groups = sorted({r.parts[0] for r in rels if len(r.parts) > 1})
    classes = groups if len(groups) >= 2 and all(len(r.parts) > 1 for r in rels) else []
    check_classes(what, len(classes), f"{len(classes)} class folders under {base}")
    val_set = _val_images(rels, val_fraction)
    n_crops = (len(rels) - len(val_set)) * crops_per_image + len(val_set)
    check_fits(f"folder: {n_crops:,} crops of {crop}x{crop} (crops_per_image={crops_per_image})",
               n_crops * crop * crop * (4 * channels + (8 if mask_dir is not None else 0)),
               "lower dataset.crops_per_image or dataset.crop")

    parts: dict[bool, list[Crop]] = {True: [], False: []}  # is val -> crops
    max_id = 0
    for rel in rels:
        raw, white, mask = _read_pair(base, rel, channels, mask_dir, crop)
        if mask is not None and mask.numel() and int(mask.max()) > max_id:
            max_id = int(mask.max())
            check_classes(what, max_id + 1, f"mask value {max_id} in {mask_dir / rel.with_suffix('.png')}")
        label = classes.index(rel.parts[0]) if classes else -1
        for top, left in _crop_corners(rel, raw.shape[-2:], crop, rel in val_set, seed, crops_per_image):
            x = (raw[:, top : top + crop, left : left + crop].float() / white).clamp_(0.0, 1.0)
            m = None if mask is None else mask[top : top + crop, left : left + crop].clone()
            parts[rel in val_set].append((x, m, label))

    def assemble(crops: list[Crop]) -> Split:
        return Split(
            images=torch.stack([c[0] for c in crops]),
            masks=torch.stack([c[1] for c in crops]) if mask_dir is not None else None,  # type: ignore[misc]
            labels=torch.tensor([c[2] for c in crops], dtype=torch.long) if classes else None,
        )

    return ImageData(
        name=what,
        train=assemble(parts[False]),
        val=assemble(parts[True]),
        channels=channels,
        seg_classes=["background", *(str(i) for i in range(1, max_id + 1))] if mask_dir is not None else [],
        classes=list(classes),
    )


def _mask_folder(base: Path, masks: str | None) -> Path | None:
    """The masks folder: the one given, else ``masks`` next to root if there is one."""
    if masks is not None:
        mask_dir = Path(masks).expanduser().resolve()
        if not mask_dir.is_dir():
            raise DataError(f"folder: masks={masks} is not a folder")
        return mask_dir
    mask_dir = base.parent / "masks"
    return mask_dir if mask_dir.is_dir() and mask_dir != base else None


def _image_paths(base: Path, mask_dir: Path | None) -> list[Path]:
    """The images under ``base`` (at least two), each with its mask when there is a masks folder."""
    rels = _scan(base, mask_dir)
    if not rels:
        raise DataError(f"folder: no images ({', '.join(EXTENSIONS)}, any case) found under {base}")
    if len(rels) < 2:
        raise DataError(f"folder: only 1 image under {base}; need at least 2 (one for train, one for val)")
    if mask_dir is not None:
        lacking = [mask_dir / r.with_suffix(".png") for r in rels if not (mask_dir / r.with_suffix(".png")).is_file()]
        if lacking:
            raise DataError(
                f"folder: {len(lacking)} of {len(rels)} images have no mask in {mask_dir} (first: {lacking[0]}); "
                f"each image needs a PNG mask at the same relative path"
            )
    return rels


def _val_images(rels: list[Path], val_fraction: float) -> set[Path]:
    """Split by path hash, so an image keeps its side whatever else is added; neither side is empty."""
    order = sorted(rels, key=_unit_hash)
    n_val = sum(_unit_hash(r) < val_fraction for r in rels)
    n_val = min(max(n_val, 1), len(rels) - 1)
    return set(order[:n_val])


def _read_pair(base: Path, rel: Path, channels: int, mask_dir: Path | None, crop: int
               ) -> tuple[torch.Tensor, float, torch.Tensor | None]:
    """Image ``[C, H, W]``, the value of white, and mask ``[H, W]``; upscaled (to [0, 1], white 1)
    when the short side is below ``crop``. Crops are made from the raw file's values: less memory."""
    path = base / rel
    raw, white = _read_image(path, channels)
    mask = None if mask_dir is None else _read_mask(mask_dir / rel.with_suffix(".png"), path, tuple(raw.shape[-2:]))
    if min(raw.shape[-2:]) < crop:
        h, w = raw.shape[-2:]
        check_pixels(str(path), *_upscaled_size(h, w, crop), f" once upscaled from {w:,}x{h:,} so that its short side is "
                     f"crop={crop}")
        image, mask = _upscale(raw.float() / white, mask, crop)
        return image, 1.0, mask
    return raw, white, mask


def _crop_corners(rel: Path, hw: torch.Size, crop: int, val: bool, seed: int, n: int) -> list[tuple[int, int]]:
    """Top-left corners: the centre crop of a val image; ``n`` random crops (seeded by seed and path) of a train one."""
    h, w = hw
    if val:
        return [((h - crop) // 2, (w - crop) // 2)]
    g = seeds.generator(seed, "data_crop", _path_key(rel))
    tops = torch.randint(0, h - crop + 1, (n,), generator=g).tolist()
    lefts = torch.randint(0, w - crop + 1, (n,), generator=g).tolist()
    return list(zip(tops, lefts))
