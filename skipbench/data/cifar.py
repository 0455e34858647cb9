"""CIFAR-10 from the official python pickle batches.

Looks for ``root/cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``,
``batches.meta``), or for those files directly in ``root``. Failing that, the official archive
``root/cifar-10-python.tar.gz`` is unpacked (only those seven regular files, by their known names,
so a hostile archive cannot write elsewhere); ``download=True`` first fetches the archive and
checks its MD5. ``test_batch`` is the validation split.

The pickles are read with a restricted unpickler that only rebuilds numpy arrays and plain
containers: a tampered batch file cannot run code. CIFAR-10 has no per-pixel labels, so
``masks`` is None and ``seg_classes`` empty.
"""

from __future__ import annotations

import os
import pickle
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..limits import check_classes
from .base import ImageData, Split, check_positive
from .download import DataError, check_count, fetch, one_line
from .stats import to_float_images

# As in torchvision/datasets/cifar.py.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST = "test_batch"
META = "batches.meta"
FILES = (*TRAIN, TEST, META)
PIXELS = 3 * 32 * 32

_ALLOWED = {  # what pickled numpy arrays need (numpy 1 and numpy 2 module names)
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol 5 pickles of numpy >= 1.16
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2 (re-pickled batches)
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as ex:  # a corrupt pickle can fail in many ways: UnpicklingError, EOFError, ValueError, ...
        raise DataError(
            f"{path}: not a readable CIFAR pickle ({one_line(ex)}); the file is corrupt or truncated"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}


def _load_batch(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _load_pickle(path)
    for key in (b"data", b"labels"):
        if key not in batch:
            raise DataError(f"{path}: no {key.decode()!r} entry (keys: {', '.join(repr(k) for k in batch)})")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be a uint8 array [N, {PIXELS}], found {type(data).__name__} {shape}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'labels' must be a list of integers") from None
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {data.shape[0]} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{path}: label out of range 0..{n_classes - 1} (found {labels.min()}..{labels.max()})")
    return data, labels


def _load_meta(path: Path) -> list[str]:
    meta = _load_pickle(path)
    names = meta.get(b"label_names")
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{path}: no 'label_names' list (keys: {', '.join(repr(k) for k in meta)})")
    check_classes(str(path), len(names), f"{len(names):,} label_names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _extract(archive: Path, dest: Path) -> None:
    """Unpack the seven known files of ``archive`` into ``dest``, each atomically, in one pass."""
    wanted = {f"{FOLDER}/{name}": name for name in FILES}
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # streaming: no seeking back through the gzip stream
                name = wanted.pop(member.name.removeprefix("./"), None)
                if name is None:
                    continue
                if not member.isfile():
                    raise DataError(f"{archive}: {member.name} is not a regular file")
                src = tar.extractfile(member)
                assert src is not None
                fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as out, src:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
                    os.replace(tmp, dest / name)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as ex:
        raise DataError(f"{archive}: cannot unpack ({one_line(ex)}); the archive is corrupt or truncated") from None
    if wanted:
        raise DataError(f"{archive}: no {', '.join(sorted(wanted))} inside; not the CIFAR-10 python archive")


def _locate(root: Path, download: bool) -> Path:
    for d in (root / FOLDER, root):
        if all((d / name).is_file() for name in FILES):
            return d
    archive = root / ARCHIVE
    if not archive.is_file() and download:
        fetch("cifar10", [(ARCHIVE, ARCHIVE_MD5)], [URL], root)
    if archive.is_file():
        _extract(archive, root / FOLDER)
        return root / FOLDER
    have = root / FOLDER if (root / FOLDER).is_dir() else root
    missing = [name for name in FILES if not (have / name).is_file()]
    raise DataError(
        f"cifar10: {', '.join(missing)} not found in {have.resolve()} and no {ARCHIVE} in {root.resolve()}; "
        f"put the archive from {URL} there or set download=true"
    )


def cifar10(
    root: str,
    download: bool = False,
    size: int | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    holdout: int | None = None,
) -> ImageData:
    """CIFAR-10: 50 000 train / 10 000 val colour images ``[N, 3, 32, 32]`` (or ``size x size``).

    ``train_size`` / ``val_size`` keep the first N images (batches read in order, and only as many
    as needed). Labels are the ten classes of ``batches.meta``; there are no masks.
    ``holdout=N``: the validation split is the *last* N training images instead of the test batch, and
    the training split the rest (He et al. 2016a's 45k/5k split: ``holdout=5000``); the test set stays unseen.
    """
    what = "cifar10"
    if size is not None:
        check_positive(what, "size", size, " (or None for 32)")
    check_count(what, "train_size", train_size)
    check_count(what, "val_size", val_size)
    check_count(what, "holdout", holdout)
    d = _locate(Path(root).expanduser(), download)
    classes = _load_meta(d / META)

    def split(names: tuple[str, ...], limit: int | None, limit_name: str) -> Split:
        datas, labels, have = [], [], 0
        for name in names:
            if limit is not None and have >= limit:
                break
            data, y = _load_batch(d / name, len(classes))
            datas.append(data)
            labels.append(y)
            have += data.shape[0]
        if limit is not None and have < limit:
            raise DataError(f"{what}: {limit_name}={limit} but {', '.join(names)} hold only {have} images")
        data, y = np.concatenate(datas)[:limit], np.concatenate(labels)[:limit]
        if data.shape[0] == 0:
            raise DataError(f"{what}: {', '.join(str(d / n) for n in names)} hold no images")
        raw = torch.from_numpy(data.reshape(-1, 3, 32, 32))
        return Split(images=to_float_images(raw, size, what=what), masks=None, labels=torch.from_numpy(y))

    if holdout:
        full = split(TRAIN, None, "train_size")
        if holdout >= len(full):
            raise DataError(f"{what}: holdout={holdout} leaves no training images (the training batches hold {len(full)})")
        keep = len(full) - holdout
        train = full.take(slice(0, min(keep, train_size or keep)))
        val = full.take(slice(keep, keep + (val_size or holdout)))
    else:
        train, val = split(TRAIN, train_size, "train_size"), split((TEST,), val_size, "val_size")
    return ImageData(
        name=what,
        train=train,
        val=val,
        channels=3,
        seg_classes=[],
        classes=classes,
    )
