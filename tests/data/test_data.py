"""The shapes data set and the deterministic epoch sampler."""

from __future__ import annotations

import pytest
import torch

from skipbench.data import EpochSampler, Split, shapes
from skipbench.data.shapes import CLASSES


def _equal_split(a: Split, b: Split) -> bool:
    return torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks) and torch.equal(a.labels, b.labels)


def test_shapes_deterministic_per_seed():
    a = shapes(size=32, train_size=64, val_size=16, seed=0)
    b = shapes(size=32, train_size=64, val_size=16, seed=0)
    assert _equal_split(a.train, b.train)
    assert _equal_split(a.val, b.val)


def test_shapes_differ_across_seeds():
    a = shapes(size=32, train_size=64, val_size=16, seed=0)
    b = shapes(size=32, train_size=64, val_size=16, seed=1)
    assert not torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.val.images, b.val.images)


def test_train_and_val_differ():
    d = shapes(size=32, train_size=16, val_size=16, seed=0)
    assert not torch.equal(d.train.images, d.val.images)


def test_val_split_independent_of_train_size():
    a = shapes(size=32, train_size=64, val_size=16, seed=3)
    b = shapes(size=32, train_size=128, val_size=16, seed=3)
    assert _equal_split(a.val, b.val)


@pytest.mark.parametrize("size,channels", [(32, 1), (33, 1), (32, 3), (37, 3)])
def test_shapes_ranges_and_shapes(size, channels):
    d = shapes(size=size, channels=channels, train_size=40, val_size=10, seed=0)
    assert d.channels == channels
    assert d.image_size == (size, size)
    for split, n in ((d.train, 40), (d.val, 10)):
        assert len(split) == n
        assert split.images.shape == (n, channels, size, size)
        assert split.images.dtype == torch.float32
        assert split.masks.shape == (n, size, size) and split.masks.dtype == torch.long
        assert split.labels.shape == (n,) and split.labels.dtype == torch.long
        assert split.images.min() >= 0 and split.images.max() <= 1
        assert split.masks.min() >= 0 and split.masks.max() <= len(CLASSES) - 1
        assert split.labels.min() >= 0 and split.labels.max() <= len(CLASSES) - 2
    assert d.seg_classes == list(CLASSES) and d.classes == list(CLASSES[1:])
    # every image has at least one shape, and the set of values covers more than one class overall
    assert ((d.train.masks > 0).flatten(1).any(1)).all()
    assert len(torch.unique(d.train.labels)) > 1


def test_labels_are_the_dominant_shape():
    d = shapes(size=32, train_size=64, val_size=8, seed=0)
    counts = torch.stack([(d.train.masks == c).flatten(1).sum(1) for c in range(1, len(CLASSES))], 1)
    picked = counts.gather(1, d.train.labels.view(-1, 1)).squeeze(1)
    assert torch.equal(picked, counts.max(1).values)


def test_shapes_brighter_than_background():
    """Shapes are painted over a dark background: within an image every shape pixel is brighter."""
    d = shapes(size=32, channels=3, train_size=32, val_size=8, seed=0)
    img, mask = d.train.images, d.train.masks
    for i in range(len(img)):
        bg = img[i][:, mask[i] == 0]
        fg = img[i][:, mask[i] > 0]
        if bg.numel() and fg.numel():
            assert bg.max() < fg.min()


def test_split_take_and_to():
    d = shapes(size=16, train_size=10, val_size=4, seed=0)
    idx = torch.tensor([3, 1])
    sub = d.train.take(idx)
    assert torch.equal(sub.images, d.train.images[idx])
    assert torch.equal(sub.masks, d.train.masks[idx])
    assert torch.equal(sub.labels, d.train.labels[idx])
    moved = Split(d.val.images).to("cpu")
    assert moved.masks is None and moved.labels is None and torch.equal(moved.images, d.val.images)


# ------------------------------------------------------------------ sampler
@pytest.mark.parametrize("n,batch", [(64, 8), (10, 3), (7, 7)])
def test_epoch_sampler_each_index_once_per_epoch(n, batch):
    s = EpochSampler(n, batch, seed=0)
    per_epoch = n // batch
    assert s.per_epoch == per_epoch
    for epoch in range(3):
        seen = torch.cat([s.indices(epoch * per_epoch + i) for i in range(per_epoch)])
        for i in range(per_epoch):
            assert len(s.indices(epoch * per_epoch + i)) == batch
        assert len(seen) == per_epoch * batch
        assert len(torch.unique(seen)) == len(seen), "an index repeated within an epoch"
        assert seen.min() >= 0 and seen.max() < n
        if n % batch == 0:
            assert torch.equal(torch.sort(seen).values, torch.arange(n))


def test_epoch_sampler_epochs_are_reshuffled():
    s = EpochSampler(64, 8, seed=0)
    e0 = torch.cat([s.indices(i) for i in range(8)])
    e1 = torch.cat([s.indices(8 + i) for i in range(8)])
    assert not torch.equal(e0, e1)


def test_epoch_sampler_is_a_pure_function_of_step():
    walked = EpochSampler(64, 8, seed=5)
    sequence = [walked.indices(step).clone() for step in range(30)]
    for step in (0, 7, 8, 17, 29, 3):  # fresh samplers, and one jumping around out of order
        assert torch.equal(EpochSampler(64, 8, seed=5).indices(step), sequence[step])
    jumper = EpochSampler(64, 8, seed=5)
    for step in (29, 0, 17, 8, 3, 29):
        assert torch.equal(jumper.indices(step), sequence[step])


def test_epoch_sampler_depends_on_seed():
    a, b = EpochSampler(64, 8, seed=0), EpochSampler(64, 8, seed=1)
    assert not all(torch.equal(a.indices(i), b.indices(i)) for i in range(8))


def test_epoch_sampler_rejects_batch_larger_than_split():
    with pytest.raises(ValueError, match="batch_size"):
        EpochSampler(4, 8, seed=0)
