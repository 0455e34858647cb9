"""Tiny files in the data sets' exact official formats (IDX, CIFAR-10's pickles, image folders), for the
tests of the real readers and of the tasks on them."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

def idx(arr: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0x0000 08 <ndim>, big-endian dims, the data."""
    header = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def fake_mnist(n_train: int = 12, n_test: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):  # a bright block on black, plus dim noise (below the mask threshold)
            top, left = rng.integers(0, 20, 2)
            images[i] = rng.integers(0, 100, (28, 28))
            images[i, top : top + 8, left : left + 8] = rng.integers(150, 256, (8, 8))
        out[f"{prefix}-images-idx3-ubyte"] = images
        out[f"{prefix}-labels-idx1-ubyte"] = rng.integers(0, 10, n).astype(np.uint8)
    return out


def write_idx_set(folder: Path, arrays: dict, gz: set[str] = frozenset()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if name in gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx(arr)))
        else:
            (folder / name).write_bytes(idx(arr))


LABEL_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def cifar_files(per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict[str, bytes]:
    """The seven files of cifar-10-batches-py, pickled like the originals (protocol 2, bytes keys)."""
    rng = np.random.default_rng(seed)

    def dump(obj) -> bytes:
        # The originals come from Python 2 and numpy 1: the array class lives in numpy.core.
        return pickle.dumps(obj, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")

    files = {}
    names = [(f"data_batch_{i}", per_batch, f"training batch {i} of 5") for i in range(1, 6)]
    for name, n, title in [*names, ("test_batch", n_test, "testing batch 1 of 1")]:
        files[name] = dump({
            b"batch_label": title.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{name}_{i}.png".encode() for i in range(n)],
        })
    files["batches.meta"] = dump({b"num_cases_per_batch": per_batch, b"label_names": LABEL_NAMES, b"num_vis": 3072})
    return files


def write_cifar(root: Path, files: dict[str, bytes]) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name, blob in files.items():
        (d / name).write_bytes(blob)
    return d


def cifar_archive(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in {**files, "readme.html": b"<html></html>"}.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def save(path: Path, arr: np.ndarray, **kw) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)


def image_tree(tmp_path: Path, n_per_class: int = 4, with_masks: bool = True) -> Path:
    """images/<cat|dog>/...: PNG (grey value = 40 * mask id, so crops can be checked) and JPEG."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c, cls in enumerate(("cat", "dog")):
        for i in range(n_per_class):
            h, w = (48, 80) if i % 2 else (70, 52)
            mask = rng.integers(0, 4, (h // 4, w // 4)).repeat(4, 0).repeat(4, 1).astype(np.uint8)
            mask[:4] = 5  # the largest id: seg_classes runs up to 5
            rel = f"{cls}/sub/{i}" if i == 3 else f"{cls}/{i}"
            if i == 2 and cls == "dog":  # a lossy JPEG among the PNGs
                save(root / f"{rel}.jpg", np.stack([mask * 40] * 3, -1), quality=95)
            else:
                save(root / f"{rel}.png", np.stack([mask * 40] * 3, -1))
            if with_masks:
                save(tmp_path / "masks" / f"{rel}.png", mask)
    return root
