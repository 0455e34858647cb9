"""The shipped presets compose: every experiment (with the Hydra part: mode, sweeper params) and
every launcher config, as ``skipbench train experiment=X`` / ``hydra/launcher=Y`` would."""

from __future__ import annotations

import importlib.util

import pytest
from omegaconf import OmegaConf

import skipbench.config as sbconfig
from skipbench.models import MODELS

from conftest import group_options


def compose_with_hydra(overrides: list[str]):
    """The ``train`` config with its ``hydra`` node (what a launcher and sweeper would receive)."""
    from hydra import compose, initialize_config_dir

    sbconfig.register_configs()
    with initialize_config_dir(config_dir=str(sbconfig.config_dir()), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_there_are_presets():
    assert group_options("experiment")
    assert group_options("hydra/launcher")


@pytest.mark.long
@pytest.mark.parametrize("name", group_options("experiment"))
def test_experiment_preset_composes_and_checks(name):
    cfg = compose_with_hydra([f"experiment={name}"])
    sbconfig.check_config(cfg)
    # every swept value names a real option: a typo would only show when the sweep reaches that job
    params = OmegaConf.to_container(cfg.hydra.sweeper.get("params") or {}, resolve=False)
    for key, values in params.items():
        options = [v.strip() for v in str(values).split(",")]
        if key in ("model", "task", "dataset", "optimizer", "scheduler"):
            assert set(options) <= set(group_options(key)), (key, options)
        if key == "model":
            assert set(options) <= set(MODELS)
        if "(" in str(values):  # a sweeper's range syntax (interval, tag, range): no plain values to compose
            continue
        for option in options[:1] + options[-1:]:  # the first and last job of the sweep compose and check
            if ":" in option:  # a sweeper's choice syntax, not a plain value
                continue
            job = compose_with_hydra([f"experiment={name}", f"{key}={option}"])
            sbconfig.check_config(job)


@pytest.mark.parametrize("name", group_options("hydra/launcher"))
def test_launcher_preset_composes(name):
    from hydra.utils import get_class

    cfg = compose_with_hydra([f"hydra/launcher={name}"])
    launcher = cfg.hydra.launcher
    target = launcher._target_
    module = target.rsplit(".", 1)[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        pytest.skip(f"the plugin behind hydra/launcher={name} ({module}) is not installed (pip install skipbench[cluster])")
    assert get_class(target)  # the class the config names exists
    for key in ("cpus_per_task", "timeout_min", "tasks_per_node", "nodes"):
        if key in launcher and launcher[key] is not None:
            assert launcher[key] >= 1, (key, launcher[key])
    sbconfig.check_config(cfg)
