"""Stochastic depth's draws are part of the run's state: a run stopped and resumed drops the same blocks
at the same steps as the uninterrupted one (the draw counter travels in the checkpoint), so the weights
end equal; and a different seed drops other blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skipbench.train.checkpoint import CHECKPOINT, load_checkpoint
from skipbench.train.loop import train

from conftest import compose

TINY = ["dataset.train_size=32", "dataset.val_size=8", "trainer.batch_size=8", "model.width=4", "model.depth=1",
        "trainer.progress=false", "diagnostics.images=false", "diagnostics.grad_flow=false",
        "diagnostics.activations=false", "trainer.eval_every=3", "trainer.log_every=1",
        "model=resnet", "model.drop_path=0.5", "model.blocks_per_level=2", "task=classify"]


def _train(run_dir: Path, overrides: list[str], resume: bool = False) -> dict:
    run_dir.mkdir(exist_ok=True)
    return train(compose([*TINY, *overrides, *([f"resume={run_dir}"] if resume else [])]), run_dir)


@pytest.mark.long
def test_resumed_drop_path_run_equals_the_uninterrupted_one(tmp_path):
    straight = _train(tmp_path / "straight", ["trainer.max_steps=6"])
    _train(tmp_path / "split", ["trainer.max_steps=3"])
    resumed = _train(tmp_path / "split", ["trainer.max_steps=6"], resume=True)
    assert resumed["steps"] == straight["steps"] == 6
    a, b = (load_checkpoint(tmp_path / d / CHECKPOINT)["model"] for d in ("straight", "split"))
    calls = [v["calls"] for k, v in a.items() if k.endswith("drop._extra_state")]
    assert calls and all(c == 6 for c in calls), calls  # one draw per block and training step
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k
    assert resumed["final_train_loss"] == straight["final_train_loss"]
    other = _train(tmp_path / "other", ["trainer.max_steps=6", "seed=1"])
    assert other["final_train_loss"] != straight["final_train_loss"]
