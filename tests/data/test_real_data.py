"""Real data-set readers, fed tiny files written here in the exact official formats."""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skipbench.data import cifar as cifar_mod
from skipbench.data import mnist as mnist_mod
from skipbench.data.cifar import cifar10
from skipbench.data.digits import digits
from skipbench.data.download import DataError, check_md5, download, fetch, md5sum
from skipbench.data.folder import folder
from skipbench.data.mnist import fashion_mnist, mnist
from skipbench.data.stats import channel_stats

from official_formats import (LABEL_NAMES, cifar_archive, cifar_files, fake_mnist, idx, image_tree, save,  # noqa: F401
                              write_cifar, write_idx_set)

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None


def one_line(ex: pytest.ExceptionInfo) -> str:
    msg = str(ex.value)
    assert "\n" not in msg, msg
    return msg


# ---------------------------------------------------------------- MNIST (IDX)
def test_mnist_reads_plain_and_gz_idx(tmp_path):
    arrays = fake_mnist()
    write_idx_set(tmp_path, arrays, gz={"train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    data = mnist(str(tmp_path))
    assert data.name == "mnist" and data.channels == 1 and data.image_size == (28, 28)
    assert data.train.images.shape == (12, 1, 28, 28) and data.val.images.shape == (5, 1, 28, 28)
    for split, prefix in ((data.train, "train"), (data.val, "t10k")):
        assert split.images.dtype == torch.float32
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0
        expected = torch.from_numpy(arrays[f"{prefix}-images-idx3-ubyte"]).float().unsqueeze(1) / 255
        assert torch.equal(split.images, expected)
        labels = torch.from_numpy(arrays[f"{prefix}-labels-idx1-ubyte"]).long()
        assert split.labels.dtype == torch.long and torch.equal(split.labels, labels)
        # masks: digit + 1 on pixels > 0.5, 0 elsewhere
        want = torch.where(expected[:, 0] > 0.5, (labels + 1).view(-1, 1, 1), 0)
        assert split.masks.dtype == torch.long and torch.equal(split.masks, want)
        assert split.masks.max() >= 1  # the bright block is there
    assert data.seg_classes == ["background", *map(str, range(10))]
    assert data.classes == [str(d) for d in range(10)]


def test_mnist_resize_and_subsets(tmp_path):
    arrays = fake_mnist()
    write_idx_set(tmp_path, arrays)
    data = mnist(str(tmp_path), size=32, train_size=5, val_size=3)
    assert data.train.images.shape == (5, 1, 32, 32) and data.val.images.shape == (3, 1, 32, 32)
    assert data.train.masks.shape == (5, 32, 32)
    assert 0.0 <= data.train.images.min() and data.train.images.max() <= 1.0
    assert torch.equal(data.train.labels, torch.from_numpy(arrays["train-labels-idx1-ubyte"][:5]).long())
    assert torch.equal(data.val.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"][:3]).long())
    full = mnist(str(tmp_path), size=32)  # the subset is the first N of the full set
    assert torch.equal(full.train.images[:5], data.train.images)
    with pytest.raises(DataError, match=r"train_size=13 but only 12"):
        mnist(str(tmp_path), train_size=13)
    with pytest.raises(DataError, match=r"val_size=0"):
        mnist(str(tmp_path), val_size=0)
    with pytest.raises(DataError, match=r"size=0"):
        mnist(str(tmp_path), size=0)


def test_torchvision_layout_and_fashion(tmp_path):
    write_idx_set(tmp_path / "MNIST" / "raw", fake_mnist(seed=1), gz=set(mnist_mod.FILES))
    write_idx_set(tmp_path / "FashionMNIST" / "raw", fake_mnist(7, 3, seed=2))
    assert len(mnist(str(tmp_path)).train) == 12
    fashion = fashion_mnist(str(tmp_path))
    assert fashion.name == "fashion_mnist" and len(fashion.train) == 7 and len(fashion.val) == 3
    assert fashion.classes[0] == "T-shirt/top" and fashion.seg_classes[0] == "background"
    assert len(fashion.seg_classes) == 11


def test_mnist_missing_files_one_line(tmp_path):
    write_idx_set(tmp_path, {k: v for k, v in fake_mnist().items() if k.startswith("train")})
    with pytest.raises(DataError) as ex:
        mnist(str(tmp_path))
    msg = one_line(ex)
    assert "t10k-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg and str(tmp_path) in msg
    assert "train-images" not in msg and "download=true" in msg


def test_idx_validation_names_the_file(tmp_path):
    arrays = fake_mnist()
    images = tmp_path / "train-images-idx3-ubyte"

    write_idx_set(tmp_path, arrays)
    images.write_bytes(idx(arrays["train-images-idx3-ubyte"])[:-100])  # cut short
    with pytest.raises(DataError, match="truncated") as ex:
        mnist(str(tmp_path))
    assert str(images) in one_line(ex)

    images.write_bytes(idx(arrays["train-labels-idx1-ubyte"]))  # a labels file where images belong
    with pytest.raises(DataError, match=r"magic number 0x00000801, expected 0x00000803") as ex:
        mnist(str(tmp_path))
    assert str(images) in one_line(ex)

    images.write_bytes(idx(arrays["train-images-idx3-ubyte"][:11]))  # 11 images, 12 labels
    with pytest.raises(DataError, match="11 images but .* 12 labels") as ex:
        mnist(str(tmp_path))
    assert "train-labels-idx1-ubyte" in one_line(ex)

    images.unlink()  # a gzip cut short
    gz = tmp_path / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(idx(arrays["train-images-idx3-ubyte"]))[:200])
    with pytest.raises(DataError, match="corrupt or truncated") as ex:
        mnist(str(tmp_path))
    assert str(gz) in one_line(ex)


# ---------------------------------------------------------------- downloads and checksums
def test_check_md5_and_download_mismatch(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"skipbench" * 1000)
    good = md5sum(src)
    assert check_md5(src, good) and check_md5(src, good.upper())
    assert not check_md5(src, "0" * 32) and not check_md5(tmp_path / "nope", good)

    out = tmp_path / "out"
    with pytest.raises(DataError, match=f"md5 {good}, expected {'0' * 32}") as ex:
        download(src.as_uri(), out / "file.bin", md5="0" * 32)
    assert "deleted" in one_line(ex)
    assert list(out.iterdir()) == []  # neither the file nor a temporary is left

    assert download(src.as_uri(), out / "file.bin", md5=good).read_bytes() == src.read_bytes()
    # an existing file with the right checksum is kept without fetching anything
    assert download((tmp_path / "gone").as_uri(), out / "file.bin", md5=good) == out / "file.bin"
    # a wrong-checksum file is replaced by a good download
    (out / "file.bin").write_bytes(b"stale")
    download(src.as_uri(), out / "file.bin", md5=good)
    assert check_md5(out / "file.bin", good) and sorted(p.name for p in out.iterdir()) == ["file.bin"]


@pytest.fixture
def http_dir(tmp_path, monkeypatch):
    """A folder served over HTTP on localhost: ``(folder, base URL)``."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    served = tmp_path / "www"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_fetch_over_http_falls_back_to_the_next_mirror(tmp_path, http_dir):
    served, base = http_dir
    (served / "b.bin").write_bytes(b"bbb" * 100)
    out = tmp_path / "out"
    got = fetch("test", [("b.bin", md5sum(served / "b.bin"))], [f"{base}/missing/", f"{base}/"], out)
    assert got == [out / "b.bin"] and (out / "b.bin").read_bytes() == b"bbb" * 100
    with pytest.raises(DataError, match=r"test: cannot download .*/missing/c.bin .*with no network, put c.bin") as ex:
        fetch("test", [("c.bin", None)], [f"{base}/missing/"], out)
    assert str(out) in one_line(ex) and sorted(p.name for p in out.iterdir()) == ["b.bin"]


def test_mnist_download_from_mirror(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    write_idx_set(mirror, fake_mnist(), gz=set(mnist_mod.FILES))
    md5s = {f"{n}.gz": md5sum(mirror / f"{n}.gz") for n in mnist_mod.FILES}
    monkeypatch.setattr(mnist_mod, "MNIST_MD5", md5s)
    monkeypatch.setattr(mnist_mod, "MNIST_MIRRORS", ((tmp_path / "dead").as_uri() + "/", mirror.as_uri() + "/"))
    root = tmp_path / "root"
    data = mnist(str(root), download=True)  # the first mirror fails, the second answers
    assert len(data.train) == 12
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(md5s)

    bad = dict(md5s, **{"t10k-labels-idx1-ubyte.gz": "0" * 32})
    monkeypatch.setattr(mnist_mod, "MNIST_MD5", bad)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: downloaded file has md5"):
        mnist(str(tmp_path / "root2"), download=True)
    assert not (tmp_path / "root2" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in (tmp_path / "root2").rglob("*") if p.name.endswith(".part")]


def test_download_without_network_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_mod, "MNIST_MIRRORS", ((tmp_path / "offline").as_uri() + "/",))
    with pytest.raises(DataError) as ex:
        mnist(str(tmp_path), download=True)
    msg = one_line(ex)
    for name in mnist_mod.FILES:
        assert f"{name}.gz" in msg
    assert "with no network, put" in msg and str(tmp_path / "MNIST" / "raw") in msg
    assert not (tmp_path / "MNIST").exists()  # a failed download leaves no empty folders behind


def test_fashion_refuses_mnist_files(tmp_path, monkeypatch):
    write_idx_set(tmp_path, fake_mnist(), gz=set(mnist_mod.FILES))
    monkeypatch.setattr(mnist_mod, "MNIST_MD5", {f"{n}.gz": md5sum(tmp_path / f"{n}.gz") for n in mnist_mod.FILES})
    with pytest.raises(DataError, match="is the official MNIST file"):
        fashion_mnist(str(tmp_path))


# ---------------------------------------------------------------- CIFAR-10 (python pickles)


def test_cifar10_reads_batches(tmp_path):
    files = cifar_files()
    write_cifar(tmp_path, files)
    data = cifar10(str(tmp_path))
    assert data.name == "cifar10" and data.channels == 3 and data.image_size == (32, 32)
    assert data.train.images.shape == (20, 3, 32, 32) and data.val.images.shape == (6, 3, 32, 32)
    assert data.train.images.dtype == torch.float32 and data.train.masks is None and data.seg_classes == []
    assert data.classes == [n.decode() for n in LABEL_NAMES]
    batches = [pickle.loads(files[f"data_batch_{i}"], encoding="bytes") for i in range(1, 6)]
    raw = np.concatenate([b[b"data"] for b in batches])
    # row layout: 1024 red, 1024 green, 1024 blue values, each row-major 32x32
    assert torch.equal(data.train.images[0, 0], torch.from_numpy(raw[0, :1024].reshape(32, 32)).float() / 255)
    assert torch.equal(data.train.images[7, 2], torch.from_numpy(raw[7, 2048:].reshape(32, 32)).float() / 255)
    labels = sum((b[b"labels"] for b in batches), [])
    assert data.train.labels.dtype == torch.long and data.train.labels.tolist() == labels
    test = pickle.loads(files["test_batch"], encoding="bytes")
    assert data.val.labels.tolist() == test[b"labels"]


def test_cifar10_from_archive_with_subsets_and_resize(tmp_path):
    cifar_archive(tmp_path / "cifar-10-python.tar.gz", cifar_files())
    data = cifar10(str(tmp_path), size=16, train_size=6, val_size=2)
    assert data.train.images.shape == (6, 3, 16, 16) and data.val.images.shape == (2, 3, 16, 16)
    assert 0.0 <= data.train.images.min() and data.train.images.max() <= 1.0
    assert sorted(p.name for p in (tmp_path / "cifar-10-batches-py").iterdir()) == sorted(cifar_mod.FILES)
    full = cifar10(str(tmp_path))  # now read from the unpacked folder
    assert torch.equal(full.train.labels[:6], data.train.labels)
    with pytest.raises(DataError, match=r"train_size=21 but .* hold only 20"):
        cifar10(str(tmp_path), train_size=21)


def test_cifar10_download_from_file_url(tmp_path, monkeypatch):
    archive = tmp_path / "server" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    cifar_archive(archive, cifar_files())
    monkeypatch.setattr(cifar_mod, "URL", archive.as_uri())
    monkeypatch.setattr(cifar_mod, "ARCHIVE_MD5", "0" * 32)
    with pytest.raises(DataError, match="downloaded file has md5"):
        cifar10(str(tmp_path / "root"), download=True)
    assert not (tmp_path / "root" / "cifar-10-python.tar.gz").exists()
    monkeypatch.setattr(cifar_mod, "ARCHIVE_MD5", md5sum(archive))
    assert len(cifar10(str(tmp_path / "root"), download=True).train) == 20


def test_cifar10_errors_name_the_file(tmp_path):
    with pytest.raises(DataError) as ex:
        cifar10(str(tmp_path))
    msg = one_line(ex)
    assert "data_batch_1" in msg and "test_batch" in msg and "batches.meta" in msg
    assert "cifar-10-python.tar.gz" in msg and str(tmp_path) in msg

    files = cifar_files()
    d = write_cifar(tmp_path / "a", files)
    (d / "data_batch_3").write_bytes(files["data_batch_3"][: len(files["data_batch_3"]) // 2])
    with pytest.raises(DataError, match="corrupt or truncated") as ex:
        cifar10(str(tmp_path / "a"))
    assert str(d / "data_batch_3") in one_line(ex)

    d = write_cifar(tmp_path / "b", dict(files, data_batch_2=pickle.dumps({b"data": np.zeros((4, 100), np.uint8)})))
    with pytest.raises(DataError, match="no 'labels' entry") as ex:
        cifar10(str(tmp_path / "b"))
    assert str(d / "data_batch_2") in one_line(ex)

    class Evil:  # a pickle that would run code when loaded
        def __reduce__(self):
            return (os.system, ("echo owned",))

    d = write_cifar(tmp_path / "c", dict(files, test_batch=pickle.dumps({b"data": Evil()}, protocol=2)))
    with pytest.raises(DataError, match="refusing to load") as ex:
        cifar10(str(tmp_path / "c"))
    assert str(d / "test_batch") in one_line(ex)

    archive = tmp_path / "d" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    cifar_archive(archive, files)
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(DataError, match="corrupt or truncated") as ex:
        cifar10(str(tmp_path / "d"))
    assert str(archive) in one_line(ex)


# ---------------------------------------------------------------- folder of images
def test_folder_classes_masks_crops(tmp_path):
    root = image_tree(tmp_path)
    data = folder(str(root), crop=32, val_fraction=0.25, crops_per_image=3, seed=0)
    assert data.name == "folder" and data.channels == 3 and data.image_size == (32, 32)
    assert data.classes == ["cat", "dog"]
    assert data.seg_classes == ["background", "1", "2", "3", "4", "5"]
    n_train, n_val = len(data.train) // 3, len(data.val)
    assert len(data.train) % 3 == 0 and n_train + n_val == 8 and n_val >= 1 and n_train >= 1
    for split in (data.train, data.val):
        assert split.images.dtype == torch.float32 and split.images.shape[1:] == (3, 32, 32)
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0
        assert split.masks.dtype == torch.long and split.masks.shape[1:] == (32, 32)
        assert split.labels.dtype == torch.long and set(split.labels.tolist()) <= {0, 1}
        # image and mask crops are aligned (exact for the PNGs: grey = 40 * id)
        ids = torch.round(split.images[:, 0] * 255 / 40).long()
        aligned = (ids == split.masks).flatten(1).float().mean(1)
        assert (aligned == 1).sum() >= len(split) - 3 and aligned.min() > 0.8  # the JPEG is close
    assert data.train.labels.tolist().count(0) % 3 == 0  # crops keep the label of their image

    again = folder(str(root), crop=32, val_fraction=0.25, crops_per_image=3, seed=0)
    assert torch.equal(again.train.images, data.train.images) and torch.equal(again.val.images, data.val.images)
    other = folder(str(root), crop=32, val_fraction=0.25, crops_per_image=3, seed=1)
    assert torch.equal(other.val.images, data.val.images)  # the split and centre crops ignore the seed
    assert not torch.equal(other.train.images, data.train.images)


def test_folder_flat_grey_small_images_upscaled(tmp_path):
    root = tmp_path / "flat"
    rng = np.random.default_rng(1)
    for i in range(5):
        save(root / f"{i}.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))  # short side 20 < crop
    save(root / "deep" / "x.bmp", rng.integers(0, 256, (40, 40), dtype=np.uint8))
    data = folder(str(root), crop=24, channels=1, crops_per_image=2, val_fraction=0.3)
    assert data.classes == [] and data.train.labels is None and data.train.masks is None and data.seg_classes == []
    assert data.train.images.shape[1:] == (1, 24, 24) and len(data.train) + 2 * len(data.val) == 12
    grey16 = (rng.integers(0, 65536, (30, 30))).astype(np.uint16)  # 16-bit PNG: scaled, not clipped
    save(root / "z16.png", grey16)
    data = folder(str(root), crop=30, channels=1, crops_per_image=1, val_fraction=0.5)
    assert data.train.images.max() <= 1.0 and 0.0 < data.train.images.mean() < 1.0


def test_folder_errors(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError) as ex:
        folder(str(tmp_path / "empty"))
    msg = one_line(ex)
    assert all(ext in msg for ext in (".png", ".jpg", ".jpeg", ".bmp")) and str(tmp_path / "empty") in msg

    root = image_tree(tmp_path / "t", n_per_class=2)
    bad = root / "cat" / "0.png"
    bad.write_bytes(bad.read_bytes()[:120])  # a PNG cut short
    with pytest.raises(DataError, match="corrupt or truncated") as ex:
        folder(str(root), crop=16)
    assert str(bad) in one_line(ex)

    root = image_tree(tmp_path / "m", n_per_class=2)
    (tmp_path / "m" / "masks" / "dog" / "1.png").unlink()
    with pytest.raises(DataError, match="1 of 4 images have no mask") as ex:
        folder(str(root), crop=16)
    assert str(tmp_path / "m" / "masks" / "dog" / "1.png") in one_line(ex)

    save(tmp_path / "m" / "masks" / "dog" / "1.png", np.zeros((48, 80, 3), np.uint8))
    with pytest.raises(DataError, match="mode RGB"):
        folder(str(root), crop=16)
    with pytest.raises(DataError, match="crop=0"):
        folder(str(root), crop=0)


def test_folder_explicit_masks_inside_root(tmp_path):
    root = image_tree(tmp_path, n_per_class=2)
    (tmp_path / "masks").rename(root / "labels")  # masks inside root are not taken for images
    data = folder(str(root), crop=16, masks=str(root / "labels"), crops_per_image=1, val_fraction=0.5)
    assert data.classes == ["cat", "dog"] and len(data.train) + len(data.val) == 4
    assert data.train.masks is not None


# ---------------------------------------------------------------- digits and statistics
@pytest.mark.skipif(not HAS_SKLEARN, reason='scikit-learn not installed: pip install "skipbench[digits]" to run this')
def test_digits():
    data = digits(size=16, val_fraction=0.2, seed=0)
    assert data.name == "digits" and data.channels == 1
    assert len(data.train) + len(data.val) == 1797 and len(data.val) == round(1797 * 0.2)
    assert data.train.images.shape[1:] == (1, 16, 16) and data.train.images.dtype == torch.float32
    assert 0.0 <= data.train.images.min() and data.train.images.max() <= 1.0
    assert set(data.train.labels.unique().tolist()) == set(range(10))
    want = torch.where(data.train.images[:, 0] > 0.5, (data.train.labels + 1).view(-1, 1, 1), 0)
    assert torch.equal(data.train.masks, want) and data.seg_classes[0] == "background"
    assert torch.equal(digits(size=16, seed=0).val.labels, data.val.labels)
    assert not torch.equal(digits(size=16, seed=1).val.labels, data.val.labels)


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(DataError, match=r'dataset=digits needs scikit-learn: pip install "skipbench\[digits\]"'):
        digits()


def test_channel_stats():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(10, 3, 8, 8, generator=g) * torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    mean, std = channel_stats(images)
    assert len(mean) == len(std) == 3 and all(isinstance(v, float) for v in mean + std)
    want_mean, want_std = images.mean(dim=(0, 2, 3)).double(), images.std(dim=(0, 2, 3), correction=0).double()
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), want_mean, atol=1e-6)
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), want_std, atol=1e-6)
    assert std[2] == 0.0
