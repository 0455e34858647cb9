"""The papers' networks and recipes refuse bad input in one line, before any run folder or data exists."""

from __future__ import annotations

import pytest

from conftest import run_main


@pytest.mark.parametrize("args, words", [
    (["model=cifar_resnet", "model.n=0", "task=classify"], "model.n=0: must be an integer in 1..200"),
    (["model=cifar_plain", "model.n=x", "task=classify"], "model.n"),
    (["model=unet2015", "task=segment"], "dataset image size 32 px"),
    (["model=unet2015", "task=segment", "dataset.size=571", "dataset.train_size=4", "dataset.val_size=4",
      "trainer.batch_size=2"], "571 px"),
    (["model=densenet_bc", "model.L=50", "task=classify"], "model.L=50: must be 6m + 4"),
    (["model=rednet", "model.depth=31"], "model.depth=31: must be an even integer"),
    (["model=rednet", "task=classify"], "RED-Net restores images"),
    (["experiment=he2016_cifar10", "dataset.root=missing_cifar", "hydra.mode=RUN"], "cifar10: data_batch_1"),
    (["scheduler=multistep", "scheduler.milestones=[32000,48000]"], "scheduler.milestones=[32000.0, 48000.0]: must be"),
    (["augment.crop_padding=-1"], "augment.crop_padding=-1"),
])
def test_one_line_before_training(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["train", *args, "trainer.progress=false"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert words in lines[0], (words, lines[0])
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("metrics.json"))
