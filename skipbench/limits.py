"""Allocation bounds, checked before allocating: one line naming the value and the limit.

A data set or a model that cannot fit fails here in a second with the number that is too large,
instead of minutes later in the middle of a 34 GB ``torch.zeros`` (or never, swapping). The bounds:

* classes of a data set (image labels, mask ids): each eval holds a ``classes x classes`` confusion
  matrix and the model a head as wide, so a 16-bit mask value of 65535 or a meta file of 70 000 names
  is a mistake, not a data set;
* pixels of one image once upscaled to the crop (as many as Pillow opens, 89 478 485);
* bytes of an IDX file's data as its header states them, before any is read or decompressed;
* bytes a data set or a model needs against this machine's memory.

Imports nothing heavy: data readers, the config checks and the CLI use it.
"""

from __future__ import annotations

import os

from .errors import ConfigError, DataError

MAX_CLASSES = 1024  # ImageNet has 1000; a 1024 x 1024 confusion matrix is 8 MB
MAX_IMAGE_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS: the largest image it opens without a warning
MAX_IDX_BYTES = 1 << 31  # 2 GiB of pixels: 40x MNIST's largest file (47 MB)


def check_classes(what: str, n: int, source: str) -> None:
    """At most :data:`MAX_CLASSES` classes; ``source`` says where ``n`` comes from (``mask value 65535``)."""
    if n > MAX_CLASSES:
        raise DataError(f"{what}: {source} makes {n:,} classes, over the {MAX_CLASSES:,} allowed (each eval holds a "
                        f"{n:,} x {n:,} confusion matrix, {n * n * 8 / 1e9:.3g} GB)")


def check_pixels(what: str, h: int, w: int, note: str = "") -> None:
    """An image of ``h x w`` pixels is at most :data:`MAX_IMAGE_PIXELS`."""
    if h * w > MAX_IMAGE_PIXELS:
        raise DataError(f"{what}: {w:,}x{h:,} = {h * w:,} pixels{note}, over the {MAX_IMAGE_PIXELS:,} allowed "
                        f"(as many as Pillow opens)")


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gb(nbytes: float) -> str:
    """``928 GB``, ``25.3 GB``, ``0.0123 GB``, ``300,000 GB``."""
    x = nbytes / 1e9
    return f"{x:,.0f} GB" if x >= 100 else f"{x:.3g} GB"


def check_fits(what: str, nbytes: int, hint: str = "", limit: int | None = None, where: str = "memory") -> None:
    """``nbytes`` (what ``what`` would allocate) must fit ``limit`` (default: this machine's memory);
    a :class:`ConfigError` naming both and ``hint`` (how to make it smaller) otherwise."""
    limit = memory_bytes() if limit is None else limit
    if limit is not None and nbytes > limit:
        raise ConfigError(f"{what}: {gb(nbytes)}, more than the {gb(limit)} of {where} here" + (
            f"; {hint}" if hint else ""))
