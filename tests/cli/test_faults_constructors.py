"""Constructor failures, optimizer.betas and trainer.compile without a compiler: one line, no folder left."""

from __future__ import annotations

import pytest
from conftest import TINY

from skipbench.cli import main

SHORT = ["trainer.max_steps=2", "trainer.eval_every=2", "diagnostics.grad_flow=false", "diagnostics.images=false"]


def _one_line(args, tmp_path, capsys, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    capsys.readouterr()
    rc = main(["train", *TINY, *SHORT, *args, f"hydra.run.dir={tmp_path / 'run'}"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, (rc, lines)
    assert not (tmp_path / "run").exists(), "no folder left for a run that never started"
    return lines[0]


def test_a_constructor_failure_names_key_target_and_cause(tmp_path, capsys, monkeypatch):
    import importlib

    shapes_module = importlib.import_module("skipbench.data.shapes")

    def planted(*args, **kwargs):
        raise RuntimeError("planted: cannot allocate 34359738368 bytes")

    monkeypatch.setattr(shapes_module, "generate_shapes", planted)
    line = _one_line([], tmp_path, capsys, monkeypatch)
    assert "dataset (skipbench.data.shapes.shapes) failed: RuntimeError: planted: cannot allocate 34359738368 bytes" in line


def test_an_overflowing_model_is_one_line(tmp_path, capsys, monkeypatch):
    assert "failed: RuntimeError: Storage size calculation overflowed" in _one_line(
        ["model.depth=40"], tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("betas", ["[0.9]", "[0.9,0.9,0.9]", "[2.0,0.9]", "[]"])
def test_betas_of_the_wrong_length_or_range(betas, tmp_path, capsys, monkeypatch):
    line = _one_line([f"optimizer.betas={betas}"], tmp_path, capsys, monkeypatch)
    assert f"optimizer.betas={betas}: must be two numbers in [0, 1)" in line


def test_compile_without_a_compiler_is_refused_up_front(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    line = _one_line(["trainer.compile=true"], tmp_path, capsys, monkeypatch)
    assert "trainer.compile=true: torch.compile needs a C++ compiler" in line
