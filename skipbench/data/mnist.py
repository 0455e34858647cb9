"""MNIST and Fashion-MNIST from the official IDX files.

The four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``), each plain or gzipped (``.gz``), are looked for in ``root`` itself, in
torchvision's layout ``root/MNIST/raw`` (``root/FashionMNIST/raw``), and in ``root/raw``; so a
folder torchvision downloaded into is reused as is. ``download=True`` fetches the missing ``.gz``
files into ``root/MNIST/raw`` (``root/FashionMNIST/raw``), keeping MNIST and Fashion-MNIST, whose
files have the same names, apart. The t10k (test) split is the validation split.

Masks for segmentation come from thresholding: a pixel brighter than 0.5 (after any resize) gets
``label + 1``, every other pixel 0, so ``seg_classes`` is ``["background", <the ten classes>]``
and each image is one object of its class on background. This is exact in spirit for MNIST
(white strokes on black); for Fashion-MNIST it is cruder, since garments have dark regions
that count as background.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..limits import MAX_IDX_BYTES
from .base import ImageData, Split, check_positive
from .download import DataError, check_count, fetch, md5sum, one_line
from .stats import threshold_masks, to_float_images

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N)

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Mirrors and MD5s of the .gz files as published by torchvision (torchvision/datasets/mnist.py).
# yann.lecun.com often refuses downloads nowadays, so the S3 copy comes first.
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes (plain or ``.gz``), checking magic number and length.

    The header is read first and the data size it states (an exact product: four 32-bit dimensions
    overflow 64 bits) checked against :data:`~skipbench.limits.MAX_IDX_BYTES`; then exactly that much
    is read (decompressed), plus one byte to tell a file that is too long -- never the whole stream."""
    path = Path(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            head = f.read(header)
            dims, expected = _idx_header(path, head, magic, header, ndim)
            data = f.read(expected + 1)
    except (OSError, EOFError, zlib.error) as ex:  # BadGzipFile is an OSError; cut-off gzip: EOFError
        raise DataError(f"{path}: cannot read ({one_line(ex)}); the file is corrupt or truncated") from None
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "too long"
        found = f"found {len(data)}" if len(data) < expected else "found more"
        raise DataError(f"{path}: {state}: header says {'x'.join(map(str, dims))} = {expected} bytes of data, {found}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _idx_header(path: Path, head: bytes, magic: int, header: int, ndim: int) -> tuple[tuple[int, ...], int]:
    """The dimensions an IDX header states and their product, checked (magic, length, size bound)."""
    if len(head) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(head)} bytes, no header)")
    (found,) = struct.unpack(">I", head[:4])
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise DataError(f"{path}: not an IDX {kind} file: magic number 0x{found:08x}, expected 0x{magic:08x}")
    if len(head) < header:
        raise DataError(f"{path}: truncated IDX header ({len(head)} bytes, expected {header})")
    dims = struct.unpack(f">{ndim}I", head[4:header])
    expected = math.prod(dims)  # Python ints: exact, however large
    if expected > MAX_IDX_BYTES:
        raise DataError(f"{path}: header says {'x'.join(map(str, dims))} = {expected:,} bytes of data, over the "
                        f"{MAX_IDX_BYTES:,} an IDX file may hold here (MNIST's largest holds 47,040,000)")
    return dims, expected


def _dirs(root: Path, folder: str) -> list[Path]:
    return [root / folder / "raw", root, root / "raw"]


def _find(root: Path, folder: str, name: str) -> Path | None:
    for d in _dirs(root, folder):
        for candidate in (d / name, d / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _load_idx_set(
    what: str,
    root: str,
    folder: str,
    mirrors: tuple[str, ...],
    md5s: dict[str, str],
    other: tuple[str, dict[str, str]],
    classes: list[str],
    download: bool,
    size: int | None,
    train_size: int | None,
    val_size: int | None,
) -> ImageData:
    base = Path(root).expanduser()
    if size is not None:
        check_positive(what, "size", size, " (or None for 28)")
    check_count(what, "train_size", train_size)
    check_count(what, "val_size", val_size)
    found = _locate_files(what, base, folder, mirrors, md5s, download)
    other_name, other_md5 = other  # same file names: catch MNIST files given as Fashion-MNIST and back
    for path in found.values():
        if path.suffix == ".gz" and md5sum(path) == other_md5.get(path.name):
            raise DataError(f"{what}: {path} is the official {other_name} file, not {what}'s; point root elsewhere")

    def split(prefix: str, limit: int | None, limit_name: str) -> Split:
        images, labels = _read_split(what, found[f"{prefix}-images-idx3-ubyte"], found[f"{prefix}-labels-idx1-ubyte"],
                                     len(classes), limit, limit_name)
        images = to_float_images(torch.from_numpy(images.copy()).unsqueeze(1), size, what=what, mask_bytes=8)
        y = torch.from_numpy(labels.astype(np.int64))
        return Split(images=images, masks=threshold_masks(images, y), labels=y)

    return ImageData(
        name=what,
        train=split("train", train_size, "train_size"),
        val=split("t10k", val_size, "val_size"),
        channels=1,
        seg_classes=["background", *classes],
        classes=list(classes),
    )


def _locate_files(what: str, base: Path, folder: str, mirrors: tuple[str, ...], md5s: dict[str, str],
                  download: bool) -> dict[str, Path]:
    """The four IDX files (:data:`FILES`) by name, fetched first with ``download``; one line naming the missing."""
    found = {name: _find(base, folder, name) for name in FILES}
    missing = [name for name, path in found.items() if path is None]
    if missing and download:
        fetch(what, [(f"{n}.gz", md5s[f"{n}.gz"]) for n in missing], mirrors, base / folder / "raw")
        found = {name: _find(base, folder, name) for name in FILES}
        missing = [name for name, path in found.items() if path is None]
    if missing:
        looked = ", ".join(str(d) for d in _dirs(base, folder))
        raise DataError(
            f"{what}: {', '.join(f'{n}[.gz]' for n in missing)} not found in {looked}; "
            f"get them from {mirrors[0]} or set download=true"
        )
    return {name: path for name, path in found.items() if path is not None}


def _read_split(what: str, images_path: Path, labels_path: Path, n_classes: int, limit: int | None,
                limit_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` (default all) images ``[N, 28, 28]`` and labels ``[N]`` of one split, checked."""
    raw = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if raw.shape[0] != labels.shape[0]:
        raise DataError(
            f"{what}: {images_path} holds {raw.shape[0]} images but {labels_path} holds {labels.shape[0]} labels"
        )
    if labels.size and labels.max() >= n_classes:
        raise DataError(f"{labels_path}: label {int(labels.max())} out of range 0..{n_classes - 1}")
    check_count(what, limit_name, limit, raw.shape[0])
    n = raw.shape[0] if limit is None else limit
    if n == 0:
        raise DataError(f"{images_path}: holds no images")
    return raw[:n], labels[:n]


def mnist(
    root: str,
    download: bool = False,
    size: int | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
) -> ImageData:
    """MNIST digits: 60 000 train / 10 000 val images ``[N, 1, 28, 28]`` (or ``size x size``).

    ``train_size`` / ``val_size`` keep the first N images of each split (deterministic subsets).
    Labels are the digits; masks are ``digit + 1`` on pixels > 0.5, 0 elsewhere.
    """
    return _load_idx_set(
        "mnist", root, "MNIST", MNIST_MIRRORS, MNIST_MD5, ("Fashion-MNIST", FASHION_MD5), MNIST_CLASSES,
        download, size, train_size, val_size,
    )


def fashion_mnist(
    root: str,
    download: bool = False,
    size: int | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
) -> ImageData:
    """Fashion-MNIST: like :func:`mnist` (same file names and format), ten kinds of garment."""
    return _load_idx_set(
        "fashion_mnist", root, "FashionMNIST", FASHION_MIRRORS, FASHION_MD5, ("MNIST", MNIST_MD5), FASHION_CLASSES,
        download, size, train_size, val_size,
    )
