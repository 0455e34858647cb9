"""scikit-learn's bundled handwritten digits: 1797 images of 8x8, no download needed.

``sklearn.datasets.load_digits()`` reads a file shipped inside scikit-learn (an optional
dependency: ``pip install "skipbench[digits]"``). Pixel values 0..16 are scaled to [0, 1] and the
images upsampled (bilinear) to ``size``. Masks come from thresholding as for MNIST: ``digit + 1``
where a pixel is brighter than 0.5, 0 elsewhere. The train/val split is a seeded permutation.
"""

from __future__ import annotations

import torch

from .. import seeds
from .base import ImageData, Split, check_fraction, check_positive
from .download import DataError
from .mnist import MNIST_CLASSES
from .stats import threshold_masks, to_float_images


def digits(size: int = 32, val_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """The ``digits`` data set: ``[N, 1, size, size]`` images, labels 0..9 and thresholded masks."""
    check_positive("digits", "size", size)
    check_fraction("digits", "val_fraction", val_fraction)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError('dataset=digits needs scikit-learn: pip install "skipbench[digits]"') from None

    bunch = load_digits()
    raw = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)  # [1797, 1, 8, 8], 0..16
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    images = to_float_images(raw, size, scale=16.0)
    masks = threshold_masks(images, labels)

    n = images.shape[0]
    n_val = min(max(round(n * val_fraction), 1), n - 1)
    perm = torch.randperm(n, generator=seeds.generator(seed, "data_split"))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    full = Split(images=images, masks=masks, labels=labels)
    return ImageData(
        name="digits",
        train=full.take(train_idx),
        val=full.take(val_idx),
        channels=1,
        seg_classes=["background", *MNIST_CLASSES],
        classes=list(MNIST_CLASSES),
    )
