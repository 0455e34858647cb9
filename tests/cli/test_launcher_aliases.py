"""Hydra's upstream launcher names (submitit_slurm / submitit_local) are aliases of skipbench's."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from skipbench.commands.overrides import LAUNCHER_ALIASES, launcher_aliases
from skipbench.config import compose_config


def test_upstream_names_become_skipbench_launchers():
    assert launcher_aliases(["hydra/launcher=submitit_slurm", "model=resnet"]) == ["hydra/launcher=slurm", "model=resnet"]
    assert launcher_aliases(["hydra/launcher=submitit_local"]) == ["hydra/launcher=local"]
    assert launcher_aliases(["hydra/launcher=joblib", "x=submitit_slurm"]) == ["hydra/launcher=joblib", "x=submitit_slurm"]


@pytest.mark.parametrize("upstream, ours", sorted(LAUNCHER_ALIASES.items()))
def test_an_alias_composes_the_same_launcher_as_ours(upstream, ours):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    alias = compose_config(launcher_aliases(["-m"][1:] + [f"hydra/launcher={upstream}"]), hydra=True).hydra.launcher
    own = compose_config([f"hydra/launcher={ours}"], hydra=True).hydra.launcher
    # compared unresolved: the sweep folder's ${now:...} differs by microseconds between two compositions
    assert OmegaConf.to_container(alias) == OmegaConf.to_container(own) and alias._target_.startswith("hydra_plugins.skipbench_launcher.launchers.Skipbench")
