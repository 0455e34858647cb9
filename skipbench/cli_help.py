"""``skipbench train --help`` without Hydra's slow path.

Hydra's ``--help`` lists config groups by deep-copying its whole config repository once per group and
option (about 120 copies here, ~2 s on a laptop core). The same page is built here from one
composition (the path ``--cfg job`` takes, ~0.3 s): the template in ``train.yaml``'s ``hydra.help``,
the groups read from ``configs/`` (the schema groups, an implementation detail, left out).
"""

from __future__ import annotations

import string
from pathlib import Path

HELP_FLAGS = ("--help", "-h")


def wants_help(args: list[str]) -> bool:
    """``--help`` for the app (``--hydra-help`` and shell completion stay Hydra's)."""
    return any(a in HELP_FLAGS for a in args) and not any(a in ("--hydra-help", "-sc", "--shell-completion") for a in args)


def config_groups(root: Path) -> dict[str, list[str]]:
    """``{"model": ["autoencoder", ...], ...}``: every folder of YAML files under ``root`` but Hydra's own."""
    groups: dict[str, list[str]] = {}
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        name = folder.relative_to(root).as_posix()
        if name == "hydra" or name.startswith("hydra/"):
            continue
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if options:
            groups[name] = options
    return groups


def train_help(config_name: str, args: list[str]) -> str:
    """The help page Hydra would print for ``args`` (overrides change the config shown)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from .config import config_dir, register_configs
    from .config_docs import annotated_yaml

    overrides = [a for a in args if not a.startswith("-")]
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name=config_name):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    template = str(cfg.hydra.help.template)
    with open_dict(cfg):
        del cfg["hydra"]
    groups = "".join(f"{g}: {', '.join(o)}\n" for g, o in config_groups(config_dir()).items())
    return string.Template(template).safe_substitute(
        APP_CONFIG_GROUPS=groups, CONFIG=annotated_yaml(cfg, resolve="--resolve" in args),
        FLAGS_HELP="", HYDRA_CONFIG_GROUPS="")
