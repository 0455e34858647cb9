"""The fully connected skeleton, enumerated like every conv variant: each registered mlp_* model at odd and
even image sizes and depths gives [B, classes], no NaN, a gradient for every parameter; its layers are
named by depth; the block knobs reach its blocks; its one-line errors."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from skipbench.config import instantiate_checked
from skipbench.errors import ConfigError
from skipbench.models import MODELS, build_model
from skipbench.models.blocks import DenseBlock, HighwayBlock, PlainBlock, ResidualBlock
from skipbench.models.mlp import MLP
from skipbench.train.diagnostics import depth_ordered_layers, skeleton_layers

from conftest import MLP_NAMES, compose


def test_every_block_has_a_registered_mlp():
    assert {MODELS[n].block for n in MLP_NAMES} == {"plain", "residual", "highway", "dense"}


@pytest.mark.parametrize("size", [8, 9, 28])
@pytest.mark.parametrize("layers", [2, 6])
@pytest.mark.parametrize("name", MLP_NAMES)
def test_mlp_shape_finite_and_every_parameter_gets_a_gradient(name, layers, size):
    torch.manual_seed(0)
    model = build_model(name, in_channels=1, out_channels=5, num_layers=layers, width=8)
    assert isinstance(model, MLP)
    out = model.train()(torch.rand(3, 1, size, size))
    assert out.shape == (3, 5) and torch.isfinite(out).all()
    out.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name,block", [("mlp_plain", PlainBlock), ("mlp_residual", ResidualBlock),
                                        ("mlp_highway", HighwayBlock), ("mlp_dense", DenseBlock)])
def test_num_layers_counts_linear_layers_on_the_main_path(name, block):
    model = build_model(name, num_layers=100, width=8)
    assert all(type(b) is block for b in model.body) and len(model.body) == (1 if block is DenseBlock else 50)
    main = [n for n, m in model.body.named_modules() if isinstance(m, nn.Linear)
            and not any(k in n for k in ("shortcut", "carry", "gate", "transition"))]
    assert len(main) == 100, (name, len(main))
    with torch.no_grad():
        assert torch.isfinite(model.eval()(torch.rand(2, 1, 8, 8))).all()


def test_layer_names_sort_by_depth():
    model = build_model("mlp_residual", num_layers=12, width=4)
    named, blocks = skeleton_layers(model)
    names = [n for n, _ in named]
    assert names[0] == "00_stem/linear" and names[-1] == "02_head/linear"
    main = [n for n in names if n.startswith("01_body/") and "." not in n]
    assert main == [f"01_body/conv{i:02d}" for i in range(1, 13)]
    assert len(named) == len(depth_ordered_layers(model)) and len(blocks) == 6


def test_block_knobs_reach_the_mlp():
    cfg = compose(["model=mlp_residual", "task=classify", "model.norm=none", "model.residual_scale=rezero",
                   "model.drop_path=0.5", "model.num_layers=8", "model.width=6", "model.input_size=4"])
    m = instantiate(cfg.model, in_channels=1, out_channels=3, head="classes")
    blocks = [b for b in m.modules() if isinstance(b, ResidualBlock)]
    assert len(blocks) == 4 and all(b.scale.alpha.item() == 0 for b in blocks)
    assert [b.drop.survival for b in blocks] == pytest.approx([0.875, 0.75, 0.625, 0.5])
    assert not [x for x in m.modules() if isinstance(x, (nn.BatchNorm1d, nn.GroupNorm))]
    assert m.stem.in_features == 16 and m.stem.bias is not None and m.body[0].conv1.out_features == 6
    hw = instantiate(compose(["model=mlp_highway", "model.highway_gate_bias=-4"]).model, in_channels=1,
                     out_channels=3, head="classes")
    assert all(torch.all(b.gate.bias == -4) for b in hw.modules() if isinstance(b, HighwayBlock))
    gn = instantiate(compose(["model=mlp_plain", "model.norm=group", "model.norm_groups=4"]).model,
                     in_channels=1, out_channels=3, head="classes")
    assert {x.num_groups for x in gn.modules() if isinstance(x, nn.GroupNorm)} == {4}


def test_rezero_mlp_is_the_identity_at_init():
    m = build_model("mlp_residual", num_layers=20, width=8, norm="none", residual_scale="rezero")
    x = torch.randn(4, 8)
    with torch.no_grad():
        torch.testing.assert_close(m.body(x), x)


@pytest.mark.parametrize("overrides,words", [
    (["model.num_layers=7"], "model.num_layers=7: must be an even integer >= 2"),
    (["model.long_skip=concat"], "model.long_skip=concat: the fully connected skeleton has no decoder"),
    (["model.input_size=0"], "model.input_size=0: must be an integer >= 1"),
])
def test_mlp_errors_are_one_line(overrides, words):
    from skipbench.train.validate import model_keys_named

    cfg = compose(["model=mlp_plain", *overrides])
    with pytest.raises(ConfigError) as info, model_keys_named(cfg):
        instantiate_checked(cfg.model, in_channels=1, out_channels=3, head="classes")
    assert words in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="only classifies"):
        build_model("mlp_plain", head="pixels")
