"""Each default lives once, in the schema (``skipbench/config.py`` says why): a file in ``configs/`` that
extends a schema holds only what its option changes, and ``train.yaml`` repeats nothing of ``train_schema``.

Presets are not defaults and are left out: an experiment or tuned file (``@package _global_``) pins its
values whatever the defaults become, and a launcher file extends the submitit plugin's schema, not ours.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

import skipbench.config as sbconfig

CONFIGS = sbconfig.config_dir()
SCHEMA_DEFAULT = re.compile(r"^/schema/(\w+)/(\w+)@_here_$")  # what an option file's defaults list names
PRESET_FOLDERS = ("experiment", "tuned", "debug")  # @package _global_: pinned values, not defaults
PLUGIN_FOLDERS = ("hydra/launcher",)  # extend hydra-submitit-launcher's schemas (submitit_local, submitit_slurm)
COMMAND_FOLDERS = ("reproduce",)  # settings of `skipbench reproduce` (checked by skipbench/claims/budget.py), not a run's


def schema_of(path: Path):
    """The schema ``path`` extends (a dataclass, or a model's instance), or None for a preset or launcher file."""
    rel = path.relative_to(CONFIGS).as_posix()
    if rel == "train.yaml":
        return sbconfig.TrainConfig
    folder = rel.rsplit("/", 1)[0]
    if folder in PRESET_FOLDERS + PLUGIN_FOLDERS + COMMAND_FOLDERS:
        return None
    entries = (yaml.safe_load(path.read_text()) or {}).get("defaults", [])
    found = [m.groups() for e in entries if isinstance(e, str) and (m := SCHEMA_DEFAULT.match(e))]
    assert found == [(folder, path.stem)], f"{rel}: an option file extends /schema/{folder}/{path.stem}@_here_"
    return sbconfig.SCHEMAS[folder][path.stem]


def repeated_defaults(schema, values: dict) -> list[str]:
    """``key: value`` of every value in ``values`` (a YAML file's keys, ``defaults`` and ``hydra`` left out)
    that equals the schema's default once the schema's types apply, as Hydra merges it."""
    values = {k: v for k, v in values.items() if k not in ("defaults", "hydra")}
    base = OmegaConf.structured(schema)
    merged = OmegaConf.merge(base, values)  # an unknown key or a wrong type fails here, as in Hydra
    before = OmegaConf.to_container(base, resolve=False, enum_to_str=True)
    after = OmegaConf.to_container(merged, resolve=False, enum_to_str=True)

    def walk(given: dict, old: dict, new: dict, prefix: str) -> list[str]:
        out = []
        for key, value in given.items():
            if isinstance(value, dict) and isinstance(old.get(key), dict):
                out += walk(value, old[key], new[key], f"{prefix}{key}.")
            elif new[key] == old[key]:
                out.append(f"{prefix}{key}: {value!r}")
        return out

    return walk(values, before, after, "")


YAMLS = sorted(CONFIGS.rglob("*.yaml"))
CHECKED = [p for p in YAMLS if schema_of(p) is not None]


def test_every_config_file_is_checked_or_a_preset():
    rel = {p.relative_to(CONFIGS).as_posix() for p in YAMLS}
    left_out = {r for r in rel if r.rsplit("/", 1)[0] in PRESET_FOLDERS + PLUGIN_FOLDERS + COMMAND_FOLDERS}
    assert "train.yaml" in rel and {"model/unet_crop.yaml", "optimizer/sgd.yaml"} <= rel
    assert {p.relative_to(CONFIGS).as_posix() for p in CHECKED} == rel - left_out


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.relative_to(CONFIGS).as_posix())
def test_no_config_file_repeats_a_schema_default(path):
    values = yaml.safe_load(path.read_text()) or {}
    assert repeated_defaults(schema_of(path), values) == [], (
        f"{path.relative_to(CONFIGS)} repeats the schema default (skipbench/config.py): drop it from the YAML")


def test_the_check_finds_a_repeated_default_and_keeps_a_changed_one():
    model = sbconfig.SCHEMAS["model"]["unet_crop"]
    assert repeated_defaults(model, {"depth": 1}) == []  # unet_crop's own depth
    assert repeated_defaults(model, {"depth": 3, "width": 8}) == ["depth: 3"]
    assert repeated_defaults(sbconfig.AdamConfig, {"lr": 0.001, "_target_": "torch.optim.Adam"}) == [
        "lr: 0.001", "_target_: 'torch.optim.Adam'"]
    assert repeated_defaults(sbconfig.DenoiseConfig, {"noise": "gaussian", "sigma": 0}) == ["noise: 'gaussian'"]
    assert repeated_defaults(sbconfig.FolderConfig, {"root": "???"}) == ["root: '???'"]  # MISSING, said twice
    assert repeated_defaults(sbconfig.TrainConfig, {"seed": 0, "trainer": {"max_steps": 400, "batch_size": 8}}) == [
        "seed: 0", "trainer.max_steps: 400"]
