"""Allocation bounds, checked before allocating (one line naming the value and the limit), and data-set
files that are not what they claim (FIFOs, devices, non-UTF-8 names, wrapped IDX sizes, bombs)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import skipbench.limits as limits
from skipbench.data import shapes
from skipbench.data.base import ImageData, Split
from skipbench.data.cifar import _load_meta
from skipbench.data.folder import folder
from skipbench.data.mnist import IMAGES_MAGIC, read_idx
from skipbench.data.stats import to_float_images
from skipbench.errors import ConfigError, DataError

from conftest import fails_if_blocked  # noqa: E402

GB = 10**9


@pytest.fixture(autouse=True)
def no_hang():
    with fails_if_blocked("a data reader"):
        yield


@pytest.fixture
def small_machine(monkeypatch):
    """An 8 GB machine, whatever this one has: the memory bounds give the same answer everywhere."""
    monkeypatch.setattr(limits, "memory_bytes", lambda: 8 * GB)


def _images(root: Path, n: int = 4, size: int = 40) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((size, size), 30 * i, np.uint8)).save(root / f"{i}.png")
    return root


# ------------------------------------------------------------------ classes
@pytest.mark.parametrize("value", [65535, 1024])
def test_a_mask_value_past_the_class_bound_is_refused(value, tmp_path):
    root = _images(tmp_path / "img")
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(4):
        m = np.zeros((40, 40), np.uint16)
        m[0, 0] = value if i == 2 else 1
        Image.fromarray(m).save(masks / f"{i}.png")
    with pytest.raises(DataError, match=rf"mask value {value} in .*2\.png makes {value + 1:,} classes, over the 1,024"):
        folder(str(root), crop=32)


def test_the_largest_class_id_allowed_still_loads(tmp_path):
    root = _images(tmp_path / "img")
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 40), 1023 if i == 1 else 0, np.uint16)).save(masks / f"{i}.png")
    assert len(folder(str(root), crop=32).seg_classes) == limits.MAX_CLASSES


def test_a_cifar_meta_with_70000_names_is_refused(tmp_path):
    meta = tmp_path / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(70_000)]}))
    with pytest.raises(DataError, match="70,000 label_names makes 70,000 classes, over the 1,024"):
        _load_meta(meta)


def test_any_reader_s_classes_are_bounded():
    split = Split(images=torch.zeros(2, 1, 4, 4))
    with pytest.raises(DataError, match="2,000 classes"):
        ImageData(name="mine", train=split, val=split, channels=1, classes=[str(i) for i in range(2000)])


# ------------------------------------------------------------------ image sizes
def test_an_image_upscaled_past_the_pixel_bound_is_refused(tmp_path):
    root = _images(tmp_path / "img")
    Image.fromarray(np.zeros((1, 2_000_000), np.uint8)).save(root / "long.png")
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"long\.png: 128,000,000x64 = 8,192,000,000 pixels once upscaled from "
                                        r"2,000,000x1 .*crop=64, over the 89,478,485"):
        folder(str(root), crop=64)
    assert time.perf_counter() - start < 10


def test_too_many_crops_for_memory_are_refused(tmp_path, small_machine):
    root = _images(tmp_path / "img")
    with pytest.raises(ConfigError, match=r"crops_per_image=1000000\).*more than the 8 GB of memory"):
        folder(str(root), crop=32, crops_per_image=1_000_000)


@pytest.mark.parametrize("make", ["fifo", "device", "folder"])
def test_an_image_that_is_not_a_regular_file_is_refused_without_blocking(make, tmp_path):
    root = _images(tmp_path / "img")
    special = root / "x.png"
    {"fifo": lambda: os.mkfifo(special), "device": lambda: special.symlink_to("/dev/zero"),
     "folder": lambda: None}[make]()
    if make == "folder":  # a folder named x.png is walked into, not read: it holds no images
        special.mkdir()
        assert len(folder(str(root), crop=32).train) > 0
        return
    kind = {"fifo": "a FIFO", "device": "a character device"}[make]
    with pytest.raises(DataError, match=rf"x\.png is not a regular file \({kind}\)"):
        folder(str(root), crop=32)


def test_non_utf8_file_names_load(tmp_path):
    root = _images(tmp_path / "img", n=3)
    os.rename(root / "0.png", os.fsencode(root) + b"/\xff\xfe.png")
    data = folder(str(root), crop=32, crops_per_image=1)
    assert len(data.train) + len(data.val) == 3


# ------------------------------------------------------------------ IDX and gzip
def _idx(path: Path, dims: tuple[int, ...], body: bytes = b"", gz: bool = False) -> Path:
    data = struct.pack(">I", IMAGES_MAGIC) + struct.pack(f">{len(dims)}I", *dims) + body
    (gzip.open if gz else open)(path, "wb").write(data)
    return path


@pytest.mark.parametrize("dims", [(2**32 - 1,) * 3, (4_000_000_000, 28, 28), (2**21, 2**11, 2**11)])
def test_an_idx_header_promising_too_much_is_refused_before_reading(dims, tmp_path):
    path = _idx(tmp_path / "x-idx3-ubyte.gz", dims, gz=True)
    with pytest.raises(DataError, match=rf"= {np.prod(dims, dtype=object):,} bytes of data, over the 2,147,483,648"):
        read_idx(path, IMAGES_MAGIC)


def test_a_gzip_holding_more_than_its_header_says_is_read_no_further(tmp_path, monkeypatch):
    path = _idx(tmp_path / "x-idx3-ubyte.gz", (2, 28, 28), bytes(64 << 20), gz=True)  # 64 MB after 1.5 KB
    sizes = []
    real = gzip.GzipFile.read
    monkeypatch.setattr(gzip.GzipFile, "read", lambda self, n=-1: sizes.append(n) or real(self, n))
    with pytest.raises(DataError, match="too long: header says 2x28x28 = 1568 bytes of data, found more"):
        read_idx(path, IMAGES_MAGIC)
    assert -1 not in sizes and max(sizes) == 1569


# ------------------------------------------------------------------ data sets and models vs memory
def test_shapes_past_memory_is_refused_before_allocating(small_machine):
    with pytest.raises(ConfigError, match=r"shapes: 4,608 images of 3x4096x4096 \(size=4096\): .* GB, more than "
                                          r"the 8 GB of memory here; the documented sizes are 32..128"):
        shapes(size=4096, channels=3)


def test_resized_real_data_past_memory_is_refused(small_machine):
    raw = torch.zeros(60_000, 1, 1, 1, dtype=torch.uint8)
    with pytest.raises(ConfigError, match=r"mnist: 60,000 images of 1x4096x4096 \(size=4096\): 4,027 GB"):
        to_float_images(raw, 4096, what="mnist")


def test_a_model_past_memory_is_refused_on_the_meta_device(small_machine):
    from conftest import TINY, compose

    from skipbench.train.validate import check_runnable

    with pytest.raises(ConfigError, match=r"model unet_concat \(model\.width=2000, model\.depth=3\): [\d,]+ parameters "
                                          r".* GB, more than the 8 GB of memory here; lower model.width"):
        check_runnable(compose([*TINY, "model.width=2000"]), None)
    check_runnable(compose([*TINY, "model.width=8"]), None)  # a small one passes
