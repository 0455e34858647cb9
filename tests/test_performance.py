"""Start-up and resource paths: what they import and record (speeds are measured by scripts/bench.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import cli_env, describe, run_cli


def test_train_help_is_light(tmp_path):
    """``train --help`` composes the config once and imports neither torch nor the models."""
    code = ("import sys; from skipbench.cli import main; rc = main(['train', 'model=resnet', '--help']); "
            "print('IMPORTED', [m for m in ('torch', 'skipbench.models', 'matplotlib') if m in sys.modules]); "
            "sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, describe(res)
    assert "IMPORTED []" in res.stdout, res.stdout[-300:]
    assert "name: resnet" in res.stdout  # the overrides change the config shown, as with Hydra's help
    assert "model: autoencoder" in res.stdout and "schema/" not in res.stdout
    assert not list(tmp_path.iterdir())


def test_train_help_bad_option_is_one_line(tmp_path):
    res = run_cli(["train", "model=bogus", "--help"], cwd=tmp_path)
    assert res.returncode == 2, describe(res)
    assert res.stderr.strip().count("\n") == 0 and "bogus" in res.stderr and "unet_concat" in res.stderr


def _train(tmp_path, name: str, overrides: list[str]) -> dict:
    from conftest import TINY, compose

    from skipbench.train.loop import train

    cfg = compose([*TINY, "trainer.max_steps=2", "trainer.eval_every=2", "diagnostics.images=false", *overrides])
    (tmp_path / name).mkdir()
    return train(cfg, tmp_path / name)


def test_peak_memory_is_per_run(tmp_path):
    """A small run after a large one in the same process reports its own, smaller peak."""
    from pathlib import Path

    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("no per-process peak reset here (not Linux): the peak is the process's, monotone")
    big = _train(tmp_path, "big", ["trainer.batch_size=128", "dataset.train_size=128", "model.width=8"])
    small = _train(tmp_path, "small", [])
    assert big["peak_memory_kind"] == small["peak_memory_kind"] == "cpu_peak_rss"
    assert big["peak_memory_mb"] > small["peak_memory_mb"] + 40, (big["peak_memory_mb"], small["peak_memory_mb"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_memory_is_max_allocated(tmp_path):
    summary = _train(tmp_path, "cuda", ["trainer.device=cuda"])
    assert summary["peak_memory_kind"] == "cuda_max_allocated" and summary["peak_memory_mb"] > 0
