"""A no-op resume (``resume=<completed run>``, same config) is decided from metrics.json and the saved
config alone: no data, no model, no checkpoint read, torch never imported (issue 26 item 7)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, compose
from omegaconf import OmegaConf

from skipbench.commands.job import completed_as_configured
from skipbench.run_folder import CHECKPOINT, CONFIG, METRICS, OVERRIDES

STEPS = ["trainer.max_steps=20"]


def _completed(tmp_path: Path, status: str = "completed", steps: int = 20) -> Path:
    run = tmp_path / "run"
    (run / CONFIG).parent.mkdir(parents=True)
    OmegaConf.save(compose(TINY + STEPS), run / CONFIG)  # as Hydra saves it: no hydra node, resume null
    OmegaConf.save(OmegaConf.create(TINY + STEPS), run / OVERRIDES)
    (run / CHECKPOINT).write_bytes(b"not read")
    (run / METRICS).write_text(json.dumps({"status": status, "steps": steps, "max_steps": 20}))
    return run


@pytest.mark.long
def test_only_a_completed_run_with_the_same_config_is_a_no_op(tmp_path):
    run = _completed(tmp_path)
    assert completed_as_configured(compose(TINY + STEPS + [f"resume={run}"])) == 20
    assert completed_as_configured(compose(TINY + STEPS + [f"resume={run / CHECKPOINT}"])) == 20
    # anything else takes the full check (which refuses a changed architecture, or trains on)
    assert completed_as_configured(compose(TINY + STEPS + ["model.width=8", f"resume={run}"])) is None
    assert completed_as_configured(compose(TINY + ["trainer.max_steps=40", f"resume={run}"])) is None
    (run / CHECKPOINT).unlink()
    assert completed_as_configured(compose(TINY + STEPS + [f"resume={run}"])) is None
    for status, steps in (("interrupted", 20), ("completed", 10)):
        other = _completed(tmp_path / status / str(steps), status, steps)
        assert completed_as_configured(compose(TINY + STEPS + [f"resume={other}"])) is None


def test_no_op_resume_says_so_without_importing_torch(tmp_path):
    run = _completed(tmp_path)
    code = ("import sys; from skipbench.cli import main; rc = main(['train', 'resume=" + str(run) + "']); "
            "print('torch' in sys.modules, rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.stdout.split()[-2:] == ["False", "0"], out.stdout + out.stderr
    assert "the run already completed (step 20 of trainer.max_steps=20); nothing to do" in out.stderr
