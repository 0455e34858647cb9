"""The registry (``skipbench.models.MODELS``) and ``configs/model/*.yaml`` agree, both directions."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

import skipbench.config as sbconfig
from skipbench.models import MODELS, UnknownModelError, build_model, get_variant

from conftest import compose, group_options


def test_model_yamls_match_registry():
    assert set(group_options("model")) == set(MODELS)
    for name, variant in MODELS.items():
        raw = OmegaConf.load(sbconfig.config_dir() / "model" / f"{name}.yaml")
        assert raw.name == name
        assert raw.long_skip == variant.long_skip, name
        assert raw.block == variant.block, name
        assert raw.get("padding", 1) == variant.padding, name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_composed_model_config_matches_registry(name):
    cfg = compose([f"model={name}"])
    assert cfg.model.name == name
    assert str(cfg.model.long_skip) == MODELS[name].long_skip
    assert str(cfg.model.block) == MODELS[name].block
    assert cfg.model.padding == MODELS[name].padding


def test_build_model_unknown_name():
    with pytest.raises(UnknownModelError) as info:
        build_model("nope")
    msg = str(info.value)
    assert msg.startswith("unknown model 'nope'; known:")
    for name in MODELS:
        assert name in msg
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownModelError):
        get_variant("nope")


def test_build_model_overrides_registered_skips():
    m = build_model("autoencoder", long_skip="concat", block="residual", width=4, depth=1)
    assert type(m.dec0.merge).__name__ == "ConcatMerge"
    assert type(m.enc0[0]).__name__ == "ResidualBlock"
