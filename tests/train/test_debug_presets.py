"""debug=overfit|anomaly|tiny|profile (configs/debug/) and the trainer knobs they set."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch

import skipbench
from conftest import TINY, compose
from skipbench.errors import ConfigError
from skipbench.train.loop import build

FAST = [*TINY, "trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2"]

NETS = textwrap.dedent('''
    import torch
    from torch import nn

    SEEN = []

    class Recorder(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        def forward(self, x):
            if self.training:
                SEEN.append(torch.is_anomaly_enabled())
            return self.conv(x)

    class NanInBackward(nn.Module):
        """sqrt at 0: a finite forward, an infinite/NaN gradient in SqrtBackward0."""
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        def forward(self, x):
            return self.conv(x) + torch.sqrt(torch.relu(-self.conv.weight.abs())).mean() * 0
''')


@pytest.fixture
def nets(tmp_path, monkeypatch):
    (tmp_path / "debugnets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import importlib

    import debugnets

    return importlib.reload(debugnets)


def test_overfit_trains_and_validates_on_the_first_batches():
    cfg = compose(["debug=overfit", *TINY])
    assert cfg.trainer.overfit_batches == 2 and cfg.trainer.max_steps == 200
    run = build(cfg)
    assert len(run.data.train) == 2 * cfg.trainer.batch_size
    assert torch.equal(run.data.val.images, run.data.train.images)


def test_tiny_keeps_a_fraction_of_both_splits():
    cfg = compose(["debug=tiny", *TINY])
    run = build(cfg)
    assert len(run.data.train) == math.ceil(0.05 * 64) and len(run.data.val) == math.ceil(0.05 * 16)
    assert cfg.trainer.max_steps == 10


@pytest.mark.long
def test_the_presets_knobs_are_checked():
    with pytest.raises(ConfigError, match=r"^trainer\.data_fraction=0\.0: must be in \(0, 1\]"):
        skipbench.train([*FAST, "trainer.data_fraction=0"])
    with pytest.raises(ConfigError, match=r"^trainer\.overfit_batches=9: needs 72 training images"):
        skipbench.train([*FAST, "trainer.overfit_batches=9"])
    with pytest.raises(ConfigError, match=r"^trainer\.profile_steps=3: needs trainer\.max_steps >= profile_steps \+ 2"):
        skipbench.train([*FAST, "trainer.profile_steps=3"])


@pytest.mark.long
def test_anomaly_mode_is_on_while_training_and_names_the_op(nets):
    FAST = [o for o in globals()["FAST"] if not o.startswith("model.")]
    run = skipbench.train([*FAST, "debug=anomaly", "trainer.max_steps=2", "model=custom", "model.target=debugnets.Recorder"])
    assert run["status"] == "completed" and nets.SEEN and all(nets.SEEN)
    nets.SEEN.clear()
    skipbench.train([*FAST, "trainer.max_steps=2", "model=custom", "model.target=debugnets.Recorder"])
    assert nets.SEEN and not any(nets.SEEN)
    run = skipbench.train([*FAST, "debug=anomaly", "trainer.max_steps=2", "model=custom",
                           "model.target=debugnets.NanInBackward"])
    assert run["status"] == "diverged" and "SqrtBackward0" in run["error"] and "detect_anomaly" in run["error"]


@pytest.mark.long
def test_profile_writes_a_chrome_trace_and_an_op_table(tmp_path):
    run = skipbench.train([*TINY, "debug=profile", "trainer.max_steps=4", "trainer.profile_steps=2",
                           "trainer.eval_every=4"], run_dir=tmp_path / "run")
    [trace] = (run.folder / "profile").glob("*.pt.trace.json")
    events = json.loads(trace.read_text())["traceEvents"]
    assert any("ProfilerStep#" in str(e.get("name")) for e in events)
    assert "aten::" in (run.folder / "profile" / "ops.txt").read_text()
