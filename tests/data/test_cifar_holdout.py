"""CIFAR-10's 45k/5k split (He et al. 2016a): ``holdout=N`` validates on the last N training images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skipbench.data.cifar import cifar10
from skipbench.data.download import DataError

from official_formats import cifar_files, write_cifar


def test_cifar_holdout_takes_validation_from_the_end_of_training(tmp_path: Path):
    write_cifar(tmp_path, cifar_files(per_batch=4, n_test=6))
    full = cifar10(str(tmp_path))
    split = cifar10(str(tmp_path), holdout=5)
    assert (len(split.train), len(split.val)) == (15, 5)
    assert torch.equal(split.val.images, full.train.images[15:]) and torch.equal(split.train.images, full.train.images[:15])
    assert torch.equal(split.val.labels, full.train.labels[15:])
    with pytest.raises(DataError, match="holdout=20 leaves no training images"):
        cifar10(str(tmp_path), holdout=20)
