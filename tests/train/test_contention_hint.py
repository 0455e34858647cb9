"""A one-line hint when the step rate suffers from other jobs on the cores (issue 26)."""

from __future__ import annotations

import logging

import pytest
import torch

from skipbench.train.context import contention_hint

from conftest import TINY, compose


def test_the_hint_names_the_load_and_the_knob_only_when_the_cores_are_oversubscribed():
    cpu = torch.device("cpu")
    line = contention_hint(1.9, cpu, 2, load=7.8, cores=2)
    assert line and "1.9 steps/s" in line and "7.8 on 2 cores" in line and "trainer.num_threads=1" in line
    assert "\\n" not in line
    assert contention_hint(1.9, cpu, 2, load=2.9, cores=2) is None  # busy, not oversubscribed
    assert contention_hint(1.9, torch.device("meta"), 2, load=50.0, cores=2) is None  # only the CPU shares cores


@pytest.mark.long
def test_the_loop_prints_it_once_after_the_first_window(tmp_path, monkeypatch, caplog):
    import skipbench.train.context as context
    from skipbench.train.loop import train

    monkeypatch.setattr(context.os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    cfg = compose([*TINY, "model.depth=1", "trainer.max_steps=6", "trainer.log_every=2", "trainer.eval_every=6"])
    with caplog.at_level(logging.WARNING, logger="skipbench"):
        train(cfg, tmp_path)
    hints = [r.getMessage() for r in caplog.records if "trainer.num_threads=1" in r.getMessage()]
    assert len(hints) == 1 and "99.0 on" in hints[0]
