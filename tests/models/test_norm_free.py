"""model.norm and model.residual_scale: each knob reaches the built model, and each scale is its paper's
formula on small tensors (ReZero and SkipInit start at alpha = 0, Fixup's L^(-1/(2m-2)), scalar biases,
multiplier and zeroed layers); meaningless combinations are one-line errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from skipbench.errors import ConfigError
from skipbench.models import MODELS, build_model
from skipbench.models.blocks import Layers, ResidualBlock, place_blocks
from skipbench.models.shortcuts import Multiplier, ScalarBias, fixup_factor

from conftest import compose

NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
NEW_CONV = [n for n in MODELS if n in ("preact_resnet", "resnet_nonorm", "rezero_resnet", "skipinit_resnet", "fixup_resnet")]


def _built(overrides: list[str], **kw) -> nn.Module:
    """The model as the run builds it from the composed config (the knob must travel config -> module)."""
    cfg = compose(overrides)
    return instantiate(cfg.model, in_channels=1, out_channels=3, head="classes", **{"width": 8, "depth": 2, **kw})


# ------------------------------------------------------------------ norm
@pytest.mark.parametrize("model", ["plain", "resnet", "preact_resnet", "densenet", "highway", "resunet", "unet_add"])
def test_norm_none_leaves_no_norm_module_and_gives_the_layers_biases(model):
    m = _built([f"model={model}", "model.norm=none"])
    assert not [n for n, x in m.named_modules() if isinstance(x, NORM_TYPES)]
    # every main-path conv now carries the shift its norm gave it
    for name, x in m.named_modules():
        if isinstance(x, nn.Conv2d) and name.rsplit(".", 1)[-1] in ("conv1", "conv2", "conv"):
            assert x.bias is not None, name
    with_bn = _built([f"model={model}"])
    assert [n for n, x in with_bn.named_modules() if isinstance(x, nn.BatchNorm2d)]
    for name, x in with_bn.named_modules():
        if isinstance(x, nn.Conv2d) and name.rsplit(".", 1)[-1] in ("conv1", "conv2"):
            assert x.bias is None, name


@pytest.mark.parametrize("groups", [2, 4])
def test_group_norm_honours_its_groups(groups):
    m = _built(["model=resnet", "model.norm=group", f"model.norm_groups={groups}"])
    gns = [x for x in m.modules() if isinstance(x, nn.GroupNorm)]
    assert gns and not [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    for gn in gns:  # channels 8, 16, 32: every one divisible by the knob
        assert gn.num_groups == groups, gn
    assert Layers(norm="group", norm_groups=4).norm_layer(6).num_groups == 2  # gcd(4, 6): 6 channels still normed


def test_group_norm_is_group_norm_by_formula():
    gn = Layers(norm="group", norm_groups=2).norm_layer(4)
    x = torch.randn(3, 4, 5, 5)
    g = x.view(3, 2, -1)
    ref = ((g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + gn.eps)).view_as(x)
    torch.testing.assert_close(gn(x), ref)


# ------------------------------------------------------------------ ReZero / SkipInit
def _block(scale: str, norm: str = "none", **kw) -> ResidualBlock:
    torch.manual_seed(0)
    b = ResidualBlock(4, 4, layers=Layers(norm=norm), residual_scale=scale, **kw)
    place_blocks([b], 0.0)
    b.reset_skip_init()
    return b


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_rezero_starts_at_alpha_zero_and_is_the_identity(mode):
    b = _block("rezero").train(mode == "train")
    assert isinstance(b.scale, Multiplier) and b.scale.alpha.item() == 0.0 and b.scale.alpha.requires_grad
    x = torch.randn(2, 4, 6, 6)  # negative values too: no ReLU after the addition
    with torch.no_grad():
        torch.testing.assert_close(b(x), x)


def test_rezero_and_skipinit_formulas_with_alpha_set():
    x = torch.randn(2, 4, 6, 6)
    for scale, post in (("rezero", False), ("skipinit", True)):
        b = _block(scale)
        nn.init.constant_(b.scale.alpha, 0.7)
        with torch.no_grad():
            f = b.conv2(torch.relu(b.conv1(x)))
            expected = x + 0.7 * f
            torch.testing.assert_close(b(x), torch.relu(expected) if post else expected)
    # SkipInit keeps the block's own post-addition ReLU: at init it is relu(x), not x
    with torch.no_grad():
        torch.testing.assert_close(_block("skipinit")(x), torch.relu(x))


def test_alpha_is_learned():
    b = _block("rezero")
    b(torch.randn(2, 4, 6, 6)).sum().backward()
    assert b.scale.alpha.grad is not None and b.scale.alpha.grad.abs().item() > 0


# ------------------------------------------------------------------ Fixup
@pytest.mark.parametrize("L,m,expected", [(16, 2, 0.25), (9, 2, 1 / 3), (8, 4, 8 ** (-1 / 6)), (1, 2, 1.0)])
def test_fixup_factor_is_L_to_the_minus_one_over_2m_minus_2(L, m, expected):
    assert fixup_factor(L, m) == pytest.approx(expected)
    assert fixup_factor(L, m) == pytest.approx(L ** (-1 / (2 * m - 2)))


def test_fixup_init_scales_the_first_layers_and_zeroes_the_last():
    model = build_model("fixup_resnet", width=8, depth=2, blocks_per_level=2, head="classes", out_channels=3)
    blocks = [x for x in model.modules() if isinstance(x, ResidualBlock)]
    L = len(blocks)
    assert L == 6
    # He-normal std sqrt(2 / fan_in) scaled by L^(-1/2) (m = 2), checked where a layer has enough weights
    for b in blocks:
        if b.conv1.weight.numel() >= 500:
            he = math.sqrt(2 / b.conv1.weight[0].numel())
            assert b.conv1.weight.std().item() == pytest.approx(he * L ** -0.5, rel=0.2)
    assert torch.count_nonzero(model.head[-1].weight) == 0 and torch.count_nonzero(model.head[-1].bias) == 0
    plain = build_model("resnet_nonorm", width=8, depth=2, blocks_per_level=2, head="classes", out_channels=3)
    assert torch.count_nonzero(plain.head[-1].weight) > 0  # only Fixup zeroes the head


def test_fixup_block_formula_with_biases_set():
    b = _block("fixup")
    nn.init.normal_(b.conv2.weight)
    for i, p in enumerate((b.bias1a.bias, b.bias1b.bias, b.bias2a.bias, b.scale.alpha, b.scale.bias)):
        nn.init.constant_(p, 0.1 * (i + 1))
    x = torch.randn(2, 4, 6, 6)
    c = lambda t, conv: F.conv2d(t, conv.weight, None, padding=1)  # noqa: E731
    with torch.no_grad():
        out = torch.relu(c(x + 0.1, b.conv1) + 0.2)
        out = c(out + 0.3, b.conv2) * 0.4 + 0.5
        torch.testing.assert_close(b(x), torch.relu(out + x))


# ------------------------------------------------------------------ registered variants carry their knobs
@pytest.mark.parametrize("name,norm,scale", [("resnet_nonorm", "none", "none"), ("rezero_resnet", "none", "rezero"),
                                              ("skipinit_resnet", "none", "skipinit"), ("fixup_resnet", "none", "fixup"),
                                              ("resnet", "batch", "none")])
def test_variants_compose_with_their_knobs(name, norm, scale):
    cfg = compose([f"model={name}"])
    assert (cfg.model.norm, cfg.model.residual_scale) == (norm, scale)
    m = _built([f"model={name}"])
    blocks = [x for x in m.modules() if isinstance(x, ResidualBlock)]
    assert all(b.residual_scale == scale for b in blocks) and blocks
    assert bool([x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]) == (norm == "batch")


def test_new_conv_variants_are_registered():
    assert len(NEW_CONV) == 5


# ------------------------------------------------------------------ meaningless combinations: one line each
@pytest.mark.parametrize("overrides,words", [
    (["model=resnet", "model.residual_scale=fixup"], "model.residual_scale=fixup: Fixup replaces normalisation"),
    (["model=plain", "model.residual_scale=rezero"], "model.residual_scale=rezero: needs a residual branch"),
    (["model=highway", "model.shortcut=gated"], "model.shortcut=gated: needs a residual branch"),
    (["model=densenet", "model.drop_path=0.5"], "model.drop_path=0.5: needs a residual branch"),
    (["model=rezero_resnet", "model.zero_init_residual=true"], "model.zero_init_residual=True: residual_scale=rezero"),
    (["model=resnet_nonorm", "model.zero_init_residual=true"], "no norm weight to zero"),
    (["model=preact_resnet", "model.norm=none", "model.residual_scale=fixup"], "post-activation block"),
    (["model=resnet", "model.norm=layer"], "model.norm=layer: unknown norm; known: batch, group, none"),
    (["model=resnet", "model.residual_scale=alpha"], "unknown residual scale; known: none, rezero, skipinit, fixup"),
    (["model=resnet", "model.drop_path=1.0"], "model.drop_path=1.0: must be in [0, 1)"),
    (["model=resnet", "model.norm=group", "model.norm_groups=0"], "model.norm_groups=0: must be an integer >= 1"),
])
def test_meaningless_combinations_are_one_line_errors(overrides, words):
    from skipbench.config import instantiate_checked
    from skipbench.train.validate import model_keys_named

    cfg = compose(overrides)
    with pytest.raises(ConfigError) as info, model_keys_named(cfg):
        instantiate_checked(cfg.model, in_channels=1, out_channels=1, head="pixels", width=4, depth=1)
    msg = str(info.value)
    assert words in msg and "\n" not in msg, msg
