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
