"""Training-batch augmentation: random crop with zero padding and horizontal flip, one gather per batch,
drawn per (seed, step) from its own seeds purpose; applied to training batches only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import skipbench.train.loop as loop
from skipbench.data.augment import augment, draws
from skipbench.data.base import Split
from skipbench.errors import ConfigError

from conftest import TINY, compose


def batch(n: int = 16, c: int = 3, h: int = 8, w: int = 8) -> Split:
    images = torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w) + 1  # no zeros: padding shows
    masks = torch.arange(n * h * w).view(n, h, w) % 5 + 1
    return Split(images, masks, torch.arange(n))


def reference(x: torch.Tensor, dy: int, dx: int, flip: bool, p: int) -> torch.Tensor:
    """One sample the slow, obvious way: pad, crop at (dy, dx), flip."""
    h, w = x.shape[-2:]
    out = F.pad(x, (p, p, p, p))[..., dy:dy + h, dx:dx + w]
    return out.flip(-1) if flip else out


def test_each_sample_is_its_padded_window_flipped_as_drawn():
    b = batch()
    out = augment(b, seed=3, step=7, crop_padding=2, flip=True)
    dy, dx, flipped = draws(len(b), 2, True, 3, 7)
    assert 0 < int(flipped.sum()) < len(b) and len(set(dy.tolist())) > 1  # both kinds drawn, offsets vary
    for i in range(len(b)):
        assert torch.equal(out.images[i], reference(b.images[i], int(dy[i]), int(dx[i]), bool(flipped[i]), 2)), i
        assert torch.equal(out.masks[i], reference(b.masks[i], int(dy[i]), int(dx[i]), bool(flipped[i]), 2)), i
    assert torch.equal(out.labels, b.labels)
    assert (out.images == 0).any()  # some zero padding came in with the crops


def test_flip_alone_mirrors_exactly_the_drawn_samples():
    b = batch()
    out = augment(b, seed=0, step=1, crop_padding=0, flip=True)
    _, _, flipped = draws(len(b), 0, True, 0, 1)
    assert flipped.any() and (~flipped).any()
    assert torch.equal(out.images[flipped], b.images[flipped].flip(-1))
    assert torch.equal(out.images[~flipped], b.images[~flipped])


def test_nothing_asked_nothing_changed():
    b = batch()
    assert augment(b, 0, 1) is b
    out = augment(b, 0, 1, crop_padding=3, flip=False)
    assert not draws(len(b), 3, False, 0, 1)[2].any()
    assert out.images.shape == b.images.shape


def test_draws_are_a_function_of_seed_and_step_only():
    b = batch()
    torch.manual_seed(1)
    first = augment(b, seed=5, step=11, crop_padding=4, flip=True).images
    torch.manual_seed(2)  # the global generator plays no part
    torch.rand(10)
    again = augment(b, seed=5, step=11, crop_padding=4, flip=True).images
    assert torch.equal(first, again)
    assert not torch.equal(first, augment(b, seed=5, step=12, crop_padding=4, flip=True).images)
    assert not torch.equal(first, augment(b, seed=6, step=11, crop_padding=4, flip=True).images)


def test_negative_padding_is_one_line():
    cfg = compose(["augment.crop_padding=-2"])
    from skipbench.config import check_config

    with pytest.raises(ConfigError, match=r"^augment.crop_padding=-2: must be an integer >= 0"):
        check_config(cfg)


def test_the_loop_augments_training_batches_only(tmp_path: Path, monkeypatch):
    calls: list[tuple[int, bool]] = []
    real = loop.augment

    def spy(b, seed, step, crop_padding, flip):
        out = real(b, seed, step, crop_padding, flip)
        calls.append((step, not torch.equal(out.images, b.images)))
        return out

    monkeypatch.setattr(loop, "augment", spy)
    evaluated = []
    real_eval = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda model, task, val, *a: evaluated.append(val.images.clone()) or
                        real_eval(model, task, val, *a))
    cfg = compose([*TINY, "task=classify", "model=cifar_resnet", "model.n=1", "dataset.channels=3",
                   "augment.flip=true", "augment.crop_padding=4", "trainer.max_steps=4", "trainer.eval_every=2",
                   "diagnostics.grad_flow=false", "diagnostics.images=false"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    loop.train(cfg, run_dir)
    assert [s for s, _ in calls] == [1, 2, 3, 4]  # once per training step, never for an evaluation
    assert all(changed for _, changed in calls)  # the batches the model trained on were augmented
    assert len(evaluated) >= 2 and all(torch.equal(v, evaluated[0]) for v in evaluated)  # val untouched
