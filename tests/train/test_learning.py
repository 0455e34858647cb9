"""Learning happens, and the loop's diagnostics measure what they say -- checked inside real runs.

The loop is run in-process, unmodified; torch's global hooks (module forward hooks, optimizer
step pre-hooks, gradient-accumulation hooks) watch it from outside and record, at every step,
what the diagnostics should have logged: gradient norms before clipping and before the step,
and ``lr * ||g|| / ||w||`` for SGD without momentum. The logged values are then read back from the
event file, with tag names from the same functions the loop uses.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from skipbench.models import EncoderDecoder
from skipbench.train.checkpoint import CHECKPOINT, load_checkpoint
from skipbench.train.diagnostics import GradNorms, layer_tags, skeleton_layers
from skipbench.train.loop import build, train

from conftest import compose, load_events

TINY = ["dataset.train_size=32", "dataset.val_size=16", "trainer.batch_size=8", "model.width=4",
        "model.depth=2", "trainer.progress=false", "diagnostics.images=false", "diagnostics.grad_flow=false"]
# SGD without momentum or weight decay: the update is exactly -lr * g (after clipping).
PLAIN_SGD = ["optimizer=sgd", "optimizer.momentum=0", "optimizer.weight_decay=0", "optimizer.lr=0.1"]


class Watch:
    """What the training loop did, seen through torch's global hooks."""

    def __init__(self) -> None:
        self.model: EncoderDecoder | None = None
        self.train_inputs: list[torch.Tensor] = []  # the input of every training forward
        self.steps: list[dict] = []  # per optimizer step: lr, per-layer norms before the step
        self._pre_clip: dict[int, float] = {}

    def _forward(self, module, inputs, output) -> None:
        if not isinstance(module, EncoderDecoder):
            return
        if self.model is None:  # the first forward (FLOP count at build): attach per-parameter hooks
            self.model = module
            for p in module.parameters():
                p.register_post_accumulate_grad_hook(self._accumulated)
        if module.training and torch.is_grad_enabled():
            self.train_inputs.append(inputs[0].detach().clone())

    def _accumulated(self, p: torch.Tensor) -> None:
        # right after backward wrote p.grad: before clipping, before the optimizer
        self._pre_clip[id(p)] = torch.linalg.vector_norm(p.grad).item()

    def _pre_step(self, optimizer, args, kwargs) -> None:
        layers, _ = skeleton_layers(self.model)  # the stable names' order, as the tags are written
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.steps.append({
            "lr": optimizer.param_groups[0]["lr"],
            "grad_before_clip": [self._pre_clip[id(m.weight)] for _, m in layers],
            "total_before_clip": math.sqrt(sum(self._pre_clip.get(id(p), 0.0) ** 2 for p in params)),
            "grad_at_step": [torch.linalg.vector_norm(m.weight.grad).item() for _, m in layers],
            "weight_at_step": [torch.linalg.vector_norm(m.weight).item() for _, m in layers],
        })
        self._pre_clip = {}

    @property
    def layer_names(self) -> list[str]:
        return [n for n, _ in skeleton_layers(self.model)[0]]


@contextmanager
def watching():
    from torch.nn.modules.module import register_module_forward_hook
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    watch = Watch()
    handles = [register_module_forward_hook(watch._forward), register_optimizer_step_pre_hook(watch._pre_step)]
    try:
        yield watch
    finally:
        for h in handles:
            h.remove()


def _train(tmp_path: Path, overrides: list[str], name: str = "run") -> tuple[dict, Path]:
    cfg = compose([*TINY, *overrides])
    run_dir = tmp_path / name
    run_dir.mkdir(exist_ok=True)
    return train(cfg, run_dir), run_dir


def _logged(run_dir: Path, tags: list[str]) -> dict[str, dict[int, float]]:
    ea = load_events(run_dir)
    return {t: {e.step: e.value for e in ea.Scalars(t)} for t in tags}


# ------------------------------------------------------------------ the weights move
def test_one_step_changes_every_layer(tmp_path):
    overrides = ["trainer.max_steps=1", "trainer.eval_every=1", "trainer.log_every=1"]
    before = build(compose([*TINY, *overrides])).model.state_dict()  # same seed: the run's initial weights
    _train(tmp_path, overrides)
    after = load_checkpoint(tmp_path / "run" / CHECKPOINT)["model"]
    assert after["enc0.0.conv1.weight"].shape == before["enc0.0.conv1.weight"].shape
    weights = [k for k in before if k.endswith(".weight") and before[k].ndim > 1]
    unchanged = [k for k in weights if torch.equal(before[k], after[k])]
    assert weights and not unchanged, f"one optimizer step left these weights as they were: {unchanged}"


def test_denoiser_beats_its_noisy_input_within_a_few_dozen_steps(tmp_path):
    # sigma=0.4 leaves a wide gap to beat; over seeds 0-5 this run ends 3-8 dB above the input
    # (measured once), so one fixed seed is a robust check and needs no retries.
    summary, run_dir = _train(tmp_path, ["model=unet_concat", "model.width=8", "task.sigma=0.4",
                                         "optimizer.lr=0.005", "trainer.max_steps=50", "trainer.eval_every=50",
                                         "trainer.log_every=10", "dataset.train_size=64"])
    assert summary["status"] == "completed"
    baseline, reached = summary["final_val_input_psnr"], summary["final_val_psnr"]
    assert reached > baseline + 1.0, f"after 50 steps val PSNR {reached:.2f} dB, noisy input {baseline:.2f} dB"
    # and the training loss fell
    losses = load_events(run_dir).Scalars("loss/mse/train")
    assert losses[-1].value < 0.5 * losses[0].value


# ------------------------------------------------------------------ diagnostics, inside the loop
@pytest.fixture(scope="module")
def watched_sgd_run(tmp_path_factory):
    """Plain SGD, every step logged, gradient clipping active (so 'before clipping' is observable)."""
    tmp = tmp_path_factory.mktemp("watched")
    with watching() as watch:
        _train(tmp, [*PLAIN_SGD, "trainer.max_steps=3", "trainer.eval_every=3", "trainer.log_every=1",
                     "trainer.grad_clip=0.05"])
    assert len(watch.steps) == 3
    return watch, tmp / "run"


def test_clipping_was_active_in_the_watched_run(watched_sgd_run):
    watch, _ = watched_sgd_run
    for s in watch.steps:  # otherwise "before clipping" and "after clipping" would be the same numbers
        assert s["total_before_clip"] > 2 * 0.05
        assert math.sqrt(sum(g * g for g in s["grad_at_step"])) <= 0.05 * 1.001


def test_logged_update_ratio_is_lr_grad_over_weight(watched_sgd_run):
    watch, run_dir = watched_sgd_run
    tags = layer_tags(watch.layer_names, "update_ratio")
    logged = _logged(run_dir, tags)
    for step, s in enumerate(watch.steps, start=1):
        for tag, g, w in zip(tags, s["grad_at_step"], s["weight_at_step"]):
            expected = s["lr"] * g / w
            assert expected > 0
            assert logged[tag][step] == pytest.approx(expected, rel=5e-4), (tag, step)  # measured: < 5e-5


def test_logged_grad_norms_are_taken_before_clipping_and_the_step(watched_sgd_run):
    watch, run_dir = watched_sgd_run
    layer_tags_ = GradNorms(watch.model).tags[: len(watch.layer_names)]  # per layer by depth
    logged = _logged(run_dir, [*layer_tags_, "grad_norm/total"])
    for step, s in enumerate(watch.steps, start=1):
        for tag, g in zip(layer_tags_, s["grad_before_clip"], strict=True):
            assert g > 0
            assert logged[tag][step] == pytest.approx(g, rel=1e-4), (tag, step)
        assert logged["grad_norm/total"][step] == pytest.approx(s["total_before_clip"], rel=1e-4)


def test_logged_lr_and_weight_norms_are_the_run_s(watched_sgd_run):
    watch, run_dir = watched_sgd_run
    w_tags = layer_tags(watch.layer_names, "weight_norm")
    logged = _logged(run_dir, [*w_tags, "lr"])
    for step, s in enumerate(watch.steps, start=1):
        assert logged["lr"][step] == pytest.approx(s["lr"])
    # weight norms are logged after the step: the norm before the next step
    for step, s in enumerate(watch.steps[1:], start=1):
        for tag, w in zip(w_tags, s["weight_at_step"]):
            assert logged[tag][step] == pytest.approx(w, rel=1e-5), (tag, step)


def test_every_custom_scalar_chart_shows_logged_tags(watched_sgd_run):
    """The dashboard layout the loop writes: each chart is a TensorBoard chart type and each of its
    regexes matches tags the run really logged (a renamed tag would leave an empty chart)."""
    import re

    from omegaconf import OmegaConf

    from skipbench.config import DiagnosticsConfig
    from skipbench.train.diagnostics import Diagnostics

    watch, run_dir = watched_sgd_run
    tags = load_events(run_dir).Tags()["scalars"]
    layout = Diagnostics(watch.model, OmegaConf.structured(DiagnosticsConfig)).layout()
    assert layout
    for category, charts in layout.items():
        assert charts, category
        for title, (kind, regexes) in charts.items():
            assert kind in ("Multiline", "Margin"), (category, title, kind)
            for rx in regexes:
                assert any(re.search(rx, t) for t in tags), (category, title, rx)


# ------------------------------------------------------------------ batches and noise: seed and step
def _train_inputs(tmp_path: Path, name: str, overrides: list[str]) -> list[torch.Tensor]:
    with watching() as watch:
        _train(tmp_path, ["trainer.max_steps=3", "trainer.eval_every=3", "trainer.log_every=3",
                          "dataset.train_size=16", *overrides], name)
    assert len(watch.train_inputs) == 3
    return watch.train_inputs


def test_batch_order_follows_seed_and_step(tmp_path):
    """task=reconstruct: the inputs are the batch's images, so what differs is the batch order."""
    a = _train_inputs(tmp_path, "a", ["task=reconstruct", "seed=0"])
    b = _train_inputs(tmp_path, "b", ["task=reconstruct", "seed=0"])
    c = _train_inputs(tmp_path, "c", ["task=reconstruct", "seed=1"])
    assert all(torch.equal(x, y) for x, y in zip(a, b)), "same seed, different batches"
    assert not torch.equal(a[0], c[0]), "another seed, the same first batch"
    assert not torch.equal(a[0], a[1]), "step 2 trained on the batch of step 1"


def test_noise_follows_seed(tmp_path):
    """The noise, apart from the batch order: compare sorted noise values (order-free)."""
    clean = {s: _train_inputs(tmp_path, f"r{s}", ["task=reconstruct", f"seed={s}"]) for s in (0, 1)}
    noisy = {s: _train_inputs(tmp_path, f"d{s}", ["task=denoise", f"seed={s}"]) for s in (0, 1)}
    noise = {s: (noisy[s][0] - clean[s][0]).flatten().sort().values for s in (0, 1)}
    assert noise[0].std() == pytest.approx(0.2, rel=0.1)  # task.sigma's default
    # (clean + n) - clean is n only up to float rounding (~1e-7): compare with a tolerance above that
    assert not torch.allclose(noise[0], noise[1], atol=1e-4), "another seed, the same noise"
    step2 = (noisy[0][1] - clean[0][1]).flatten().sort().values
    assert not torch.allclose(noise[0], step2, atol=1e-4), "step 2 drew the noise of step 1"
