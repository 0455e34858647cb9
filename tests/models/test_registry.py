"""A variant is defined once, in ``skipbench.models.MODELS``; ``configs/model/*.yaml`` only name one.

Skip kinds are named once, in ``BLOCKS`` / ``MERGES`` next to their classes; every unknown name is one line.
"""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

import skipbench.config as sbconfig
from skipbench.models import BLOCKS, MERGES, MODELS, UnknownModelError, build_model, get_variant
from skipbench.models.blocks import block_class
from skipbench.models.merges import merge_class

from conftest import compose, group_options, run_main


def test_registry_and_config_folder_name_the_same_variants():
    assert set(group_options("model")) - {"custom"} == set(MODELS), "a variant in one place only (custom: your own)"
    for name in MODELS:
        raw = OmegaConf.load(sbconfig.config_dir() / "model" / f"{name}.yaml")
        assert list(raw.defaults) == [f"/schema/model/{name}@_here_"], name
        # The YAML names the variant and overrides nothing that defines it: the registry does.
        assert not {"name", "long_skip", "block", "padding"} & set(raw.keys()), name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_composed_model_config_is_the_registered_variant(name):
    cfg = compose([f"model={name}"])
    variant = MODELS[name]
    assert (cfg.model.name, cfg.model.long_skip, cfg.model.block, cfg.model.padding) == \
        (name, variant.long_skip, variant.block, variant.padding)


def test_variant_keys_stay_user_overrides():
    cfg = compose(["model=resnet", "model.block=dense", "model.long_skip=add"])
    assert (cfg.model.block, cfg.model.long_skip) == ("dense", "add")
    model = instantiate(cfg.model, width=2, depth=1)
    assert type(model.enc0[0]).__name__ == "DenseBlock" and type(model.dec0.merge).__name__ == "AddMerge"


def test_every_variant_names_known_skips():
    for name, variant in MODELS.items():
        assert variant.long_skip in MERGES and variant.block in BLOCKS and variant.padding in (0, 1), name


def test_unknown_skip_kinds_name_the_known_ones():
    with pytest.raises(ValueError) as info:
        block_class("bogus")
    assert str(info.value) == f"block=bogus: unknown block 'bogus'; known: {', '.join(BLOCKS)}"
    with pytest.raises(ValueError) as info:
        merge_class("bogus")
    assert str(info.value) == f"long_skip=bogus: unknown long skip 'bogus'; known: {', '.join(MERGES)}"
    with pytest.raises(ValueError, match="concat: valid convs .*none or crop_concat"):
        merge_class("concat", padding=0)


@pytest.mark.parametrize("override, words", [
    ("model.block=bogus", ["model.block=bogus", "unknown block", *BLOCKS]),
    ("model.long_skip=sum", ["model.long_skip=sum", "unknown long skip", *MERGES]),
    ("model.name=nope", ["unknown model 'nope'", *MODELS]),
])
def test_unknown_names_are_one_line_before_training(tmp_path, monkeypatch, capsys, override, words):
    monkeypatch.chdir(tmp_path)  # no MNIST files here: a name must be refused before any data is read
    code, _, err = run_main(["train", override, "dataset=mnist", "trainer.progress=false"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert list(tmp_path.iterdir()) == [], "no run folder for a config that cannot run"


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
