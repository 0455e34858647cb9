"""He et al. 2016a's CIFAR recipe as config: step decay, weight decay on every parameter, per-pixel mean,
the 45k/5k split, the presets that hold them, and exact resume with augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from skipbench.config import check_config
from skipbench.data.base import ImageData, Split
from skipbench.errors import ConfigError
from skipbench.tasks import Classify
from skipbench.train.checkpoint import CHECKPOINT, load_checkpoint
from skipbench.train.loop import param_groups, train

from conftest import TINY, compose


def lrs(milestones: list[float], gamma: float, steps: int) -> list[float]:
    cfg = compose(["scheduler=multistep", f"scheduler.milestones=[{','.join(map(str, milestones))}]",
                   f"scheduler.gamma={gamma}", "optimizer=sgd", "optimizer.lr=0.1"])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = instantiate(cfg.scheduler)(opt, total_steps=steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])  # the rate the next optimizer step uses
        opt.step()
        sched.step()
    return out


def test_multistep_divides_by_ten_after_each_milestone():
    got = lrs([0.43, 0.7], 0.1, 7)  # steps 3 and 5 of 7
    assert got == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_the_paper_schedule_is_the_default():
    cfg = compose(["scheduler=multistep"])
    assert list(cfg.scheduler.milestones) == [0.5, 0.75] and cfg.scheduler.gamma == 0.1
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = instantiate(cfg.scheduler)(opt, total_steps=64000)
    factor = sched.lr_lambdas[0]
    assert [factor(s) for s in (31999, 32000, 47999, 48000)] == pytest.approx([1, 0.1, 0.1, 0.01])  # He et al.'s


@pytest.mark.parametrize("override, words", [
    ("scheduler.milestones=[0.7,0.2]", "scheduler.milestones=[0.7, 0.2]: must be increasing fractions"),
    ("scheduler.milestones=[32000,48000]", "fractions of trainer.max_steps in (0, 1)"),
    ("scheduler.gamma=0", "scheduler.gamma=0"),
    ("trainer.weight_decay_on=bias", "trainer.weight_decay_on=bias: unknown; known: weights, all"),
    ("task.normalization=pixel", "task.normalization=pixel: unknown; known: channel, pixel_mean"),
])
def test_bad_recipe_values_are_one_line(override, words):
    cfg = compose(["scheduler=multistep", "scheduler.milestones=[0.3,0.6]", "optimizer=sgd", "task=classify",
                   "trainer.max_steps=300", override])
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_decay_all_puts_norm_weights_and_biases_under_weight_decay():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    default = param_groups(model, 1e-4)
    assert sum(p.numel() for p in default[0]["params"]) == 3 * 4 * 9 + 4 * 2
    (every,) = param_groups(model, 1e-4, "all")
    assert every["weight_decay"] == 1e-4 and len(every["params"]) == len(list(model.parameters()))


def test_decay_reaches_the_optimizer_in_a_run(tmp_path: Path):
    from skipbench.train.loop import build

    cfg = compose([*TINY, "optimizer=sgd", "optimizer.weight_decay=0.001", "trainer.weight_decay_on=all"])
    run = build(cfg)
    assert [g["weight_decay"] for g in run.optimizer.param_groups] == [0.001]
    cfg = compose([*TINY, "optimizer=sgd", "optimizer.weight_decay=0.001"])
    assert [g["weight_decay"] for g in build(cfg).optimizer.param_groups] == [0.001, 0.0]


def test_pixel_mean_subtracts_the_mean_image_without_dividing():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(20, 3, 4, 4, generator=g) * torch.linspace(0, 1, 16).view(1, 1, 4, 4)  # the mean varies by pixel
    data = ImageData("x", Split(images, labels=torch.zeros(20, dtype=torch.long)), Split(images[:4]), 3, classes=["a"])
    task = Classify("pixel_mean")
    task.setup(data)
    prepared = task.prepare(images)
    assert torch.allclose(prepared.mean(0), torch.zeros(3, 4, 4), atol=1e-6)
    assert torch.allclose(prepared, images - images.mean(0, keepdim=True))
    assert torch.allclose(task.unprepare(prepared), images.clamp(0, 1), atol=1e-6)
    channel = Classify()
    channel.setup(data)
    assert not torch.allclose(channel.prepare(images).mean(0), torch.zeros(3, 4, 4), atol=1e-3)


def test_he2016_preset_is_the_papers_recipe():
    cfg = compose(["experiment=he2016_cifar10"])
    assert (cfg.model.name, cfg.model.shortcut, cfg.task.normalization) == ("cifar_resnet", "zero_pad", "pixel_mean")
    o, s, t, a = cfg.optimizer, cfg.scheduler, cfg.trainer, cfg.augment
    assert (o._target_, o.lr, o.momentum, o.weight_decay, t.weight_decay_on) == ("torch.optim.SGD", 0.1, 0.9, 1e-4, "all")
    assert (list(s.milestones), s.gamma, t.max_steps, t.batch_size) == ([0.5, 0.75], 0.1, 64000, 128)
    assert (a.crop_padding, a.flip, cfg.dataset.holdout) == (4, True, 5000)
    small = compose(["experiment=he2016_cifar10_small"])
    assert small.model.name == "cifar_resnet" and small.trainer.weight_decay_on == "all" and small.augment.flip
    assert small.trainer.max_steps <= 300 and small.dataset._target_ == "skipbench.data.shapes"


@pytest.mark.long
def test_resumed_augmented_run_equals_the_uninterrupted_one(tmp_path: Path):
    over = [*TINY, "task=classify", "model=cifar_resnet", "model.n=1", "dataset.channels=3", "augment.flip=true",
            "augment.crop_padding=4", "trainer.eval_every=2", "diagnostics.grad_flow=false", "diagnostics.images=false",
            "diagnostics.activations=false", "trainer.log_every=1"]

    def run(name: str, steps: int, resume: bool = False) -> dict:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        return train(compose([*over, f"trainer.max_steps={steps}", *([f"resume={d}"] if resume else [])]), d)

    straight = run("straight", 4)
    run("split", 2)
    resumed = run("split", 4, resume=True)
    a, b = (load_checkpoint(tmp_path / d / CHECKPOINT)["model"] for d in ("straight", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))
    assert resumed["final_train_loss"] == straight["final_train_loss"]
