"""Each skip computes what it claims: blocks and merges against hand-written formulas on small tensors,
and in the whole model, the encoder reaches the output through a long skip (and only through it)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skipbench.models import MODELS, build_model
from skipbench.models.blocks import DenseBlock, DenseLayer, HighwayBlock, PlainBlock, ResidualBlock
from skipbench.models.merges import AddMerge, ConcatMerge, CropConcatMerge

from conftest import MODEL_NAMES


def _randomise_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN affine params and running stats, eval mode: every BN is a known affine map."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = 0.5 + torch.rand(m.num_features, generator=g)
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.3
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.2
            m.running_var = 0.5 + torch.rand(m.num_features, generator=g)
    return module.eval()


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode batch norm written out: (x - mean) / sqrt(var + eps) * weight + bias."""
    shape = (1, -1, 1, 1)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


def _conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding)


# ------------------------------------------------------------------ residual
@pytest.mark.parametrize("in_ch,out_ch", [(4, 4), (3, 6)])
def test_residual_block_is_relu_of_f_plus_shortcut(in_ch, out_ch):
    torch.manual_seed(0)
    block = _randomise_norms(ResidualBlock(in_ch, out_ch))
    x = torch.randn(2, in_ch, 6, 6)
    f = _bn(_conv(torch.relu(_bn(_conv(x, block.conv1), block.bn1)), block.conv2), block.bn2)
    if in_ch == out_ch:
        assert isinstance(block.shortcut, nn.Identity)
        p = x
    else:  # ResNet option B: 1x1 conv + BN
        proj, bn = block.shortcut
        assert proj.kernel_size == (1, 1) and (proj.in_channels, proj.out_channels) == (in_ch, out_ch)
        p = _bn(_conv(x, proj), bn)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(f + p))
        # and it is not the plain block: the skip contributes
        assert not torch.allclose(block(x), torch.relu(f))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_zero_init_residual_starts_as_identity(mode):
    block = ResidualBlock(4, 4, zero_init_residual=True)
    block.reset_skip_init()
    block.train(mode == "train")
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))  # F(x) = 0: relu(0 + x)
    off = ResidualBlock(4, 4, zero_init_residual=False)
    off.reset_skip_init()
    off.train(mode == "train")
    with torch.no_grad():
        assert not torch.allclose(off(x), torch.relu(x))


def test_zero_init_residual_whole_model_starts_from_its_shortcuts():
    """Every residual branch silent at init: a model with zero_init_residual differs from one
    without it, and each of its blocks maps a non-negative input to itself."""
    model = build_model("resnet", width=4, depth=2, zero_init_residual=True).eval()
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert blocks and all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)
    for b in blocks:
        ch = b.conv1.in_channels
        if ch == b.conv2.out_channels:
            x = torch.rand(1, ch, 5, 5)
            with torch.no_grad():
                torch.testing.assert_close(b(x), x)


# ------------------------------------------------------------------ highway
def _highway(in_ch: int = 4, out_ch: int = 4, gate: float | None = None) -> HighwayBlock:
    torch.manual_seed(0)
    block = _randomise_norms(HighwayBlock(in_ch, out_ch))
    block.reset_skip_init()
    if gate is not None:  # force T(x) = sigmoid(+-50) = 1 or 0 for every input
        nn.init.zeros_(block.gate.weight)
        nn.init.constant_(block.gate.bias, 50.0 if gate == 1 else -50.0)
    return block


def test_highway_gate_closed_returns_the_carried_input():
    block = _highway(gate=0)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)


def test_highway_gate_open_returns_the_transform():
    block = _highway(gate=1)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        h = block.transform(x)
        torch.testing.assert_close(block(x), h)
        assert not torch.allclose(h, x)  # the two gate settings give different answers


def test_highway_mixes_t_h_plus_one_minus_t_x():
    """Unforced gate: y = T * H(x) + (1 - T) * x, T = sigmoid(W x + b), written out by hand."""
    block = _highway()
    nn.init.normal_(block.gate.weight, std=0.5)  # a gate that varies from pixel to pixel
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        t = torch.sigmoid(_conv(x, block.gate))
        h = torch.relu(_bn(_conv(torch.relu(_bn(_conv(x, block.transform.conv1), block.transform.bn1)),
                               block.transform.conv2), block.transform.bn2))
        torch.testing.assert_close(block(x), t * h + (1 - t) * x)
        assert not torch.allclose(block(x), (1 - t) * h + t * x)  # the swapped gate is another block


def test_highway_projects_the_carry_when_channels_change():
    block = _highway(3, 6, gate=0)
    x = torch.randn(2, 3, 5, 5)
    proj, bn = block.carry
    with torch.no_grad():
        torch.testing.assert_close(block(x), _bn(_conv(x, proj), bn))


# ------------------------------------------------------------------ dense
def test_dense_layers_see_every_earlier_feature_map():
    torch.manual_seed(0)
    in_ch, growth, n = 3, 2, 3
    block = _randomise_norms(DenseBlock(in_ch, 5, n_layers=n, growth=growth))
    seen: list[torch.Tensor] = []
    returned: list[torch.Tensor] = []

    def record(module, inputs, output) -> None:
        seen.append(inputs[0])
        returned.append(output)

    hooks = [layer.register_forward_hook(record) for layer in block.layers]
    x = torch.randn(2, in_ch, 6, 6)
    with torch.no_grad():
        y = block(x)
    for h in hooks:
        h.remove()
    assert len(seen) == n
    for i, (inp, out) in enumerate(zip(seen, returned)):
        # layer i reads [x, new_0, ..., new_{i-1}] and returns only its own `growth` new channels
        torch.testing.assert_close(inp, torch.cat([x, *returned[:i]], dim=1))
        assert out.shape == (2, growth, 6, 6)
    # each layer is BN-ReLU-conv, written out
    layer: DenseLayer = block.layers[1]
    with torch.no_grad():
        torch.testing.assert_close(returned[1], _conv(torch.relu(_bn(seen[1], layer.bn)), layer.conv))
    # the block concatenates input and every new map, then the 1x1 transition
    bn, _, conv = block.transition
    with torch.no_grad():
        expected = _conv(torch.relu(_bn(torch.cat([x, *returned], dim=1), bn)), conv)
    torch.testing.assert_close(y, expected)
    assert y.shape == (2, 5, 6, 6)


# ------------------------------------------------------------------ plain
def test_plain_block_has_no_skip():
    torch.manual_seed(0)
    block = _randomise_norms(PlainBlock(4, 4))
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        expected = torch.relu(_bn(_conv(torch.relu(_bn(_conv(x, block.conv1), block.bn1)), block.conv2), block.bn2))
        torch.testing.assert_close(block(x), expected)


# ------------------------------------------------------------------ merges (even sizes: the crop is centred)
def test_merges_against_formulas():
    up, skip = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(AddMerge(3, 3)(up, skip), up + skip)
    torch.testing.assert_close(ConcatMerge(3, 3)(up, skip), torch.cat([skip, up], 1))
    big = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(CropConcatMerge(3, 3)(up, big), torch.cat([big[..., 2:6, 2:6], up], 1))
    assert CropConcatMerge(3, 5).out_ch == ConcatMerge(3, 5).out_ch == 8 and AddMerge(3, 5).out_ch == 3


# ------------------------------------------------------------------ the whole model: gradient through the long skip
def _enc0_grad_with_bottleneck_cut(name: str) -> torch.Tensor:
    """d output / d enc0-features when the bottleneck's output is multiplied by 0: what is left is
    the gradient through the long skips alone."""
    torch.manual_seed(0)
    padded = MODELS[name].padding == 1
    model = build_model(name, width=4, depth=2)
    size = 16 if padded else 64
    feats: list[torch.Tensor] = []

    def keep(module, inputs, output):
        output.retain_grad()
        feats.append(output)

    h1 = model.enc0.register_forward_hook(keep)
    h2 = model.bottleneck.register_forward_hook(lambda m, i, o: o * 0)  # cut the path through the bottleneck
    out = model(torch.rand(2, 1, size, size))
    h1.remove()
    h2.remove()
    (out * torch.randn_like(out)).sum().backward()
    return feats[0].grad if feats[0].grad is not None else torch.zeros_like(feats[0])


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES])
def test_long_skip_carries_the_encoder_to_the_output(name):
    grad = _enc0_grad_with_bottleneck_cut(name)
    if MODELS[name].long_skip == "none":
        assert torch.count_nonzero(grad) == 0, f"{name} has no long skip but enc0 reaches the output"
    else:
        assert grad.abs().sum() > 0, f"{name}: long_skip={MODELS[name].long_skip} but enc0 does not reach the output"


def test_there_are_variants_with_and_without_long_skips():
    kinds = {MODELS[n].long_skip == "none" for n in MODEL_NAMES}
    assert kinds == {True, False}


# ------------------------------------------------------------------ documented defaults and valid convs
def test_block_defaults_keep_the_size_and_dense_defaults():
    x = torch.randn(2, 3, 7, 7)
    for block in (PlainBlock(3, 6), ResidualBlock(3, 6), HighwayBlock(3, 6), DenseBlock(3, 6)):
        assert block(x).shape == (2, 6, 7, 7), type(block).__name__  # padding=1 by default
    dense = DenseBlock(3, 6)
    assert len(dense.layers) == 2  # "default 2, matching the other blocks' depth"
    assert [layer.conv.out_channels for layer in dense.layers] == [4, 4]  # growth max(4, 6 // 2)
    assert [layer.conv.out_channels for layer in DenseBlock(3, 16).layers] == [8, 8]  # 16 // 2
    assert DenseLayer(3, 2)(x).shape == (2, 2, 7, 7)


@pytest.mark.parametrize("block,shrink", [(PlainBlock, 4), (ResidualBlock, 4), (HighwayBlock, 4), (DenseBlock, 4)])
def test_valid_convs_shrink_every_block_by_two_pixels_per_conv(block, shrink):
    x = torch.randn(2, 4, 9, 9)
    out = block(4, 4, padding=0)(x)
    assert out.shape == (2, 4, 9 - shrink, 9 - shrink)


def test_highway_transform_keeps_the_channels():
    block = HighwayBlock(3, 6)
    assert block.transform.conv1.weight.shape == (6, 6, 3, 3)
    assert block.transform.conv2.weight.shape == (6, 6, 3, 3)
    assert block.gate.weight.shape == (6, 6, 1, 1)
    with torch.no_grad():
        assert block.transform(torch.randn(1, 6, 5, 5)).shape == (1, 6, 5, 5)


def test_crop_concat_crops_height_and_width_separately():
    up = torch.randn(1, 2, 4, 6)
    skip = torch.randn(1, 3, 8, 12)
    out = CropConcatMerge(2, 3)(up, skip)
    torch.testing.assert_close(out, torch.cat([skip[..., 2:6, 3:9], up], 1))


def test_convs_before_a_norm_have_no_bias_and_gates_do():
    """Parameter counts are compared between variants: a conv followed by a norm carries no bias (the
    norm has the shift), nor does the add-merge projection; the highway gate and the head do."""
    model = build_model("resunet", width=4, depth=2)
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and name != "head":
            assert m.bias is None, name
    assert model.head.bias is not None
    assert AddMerge(4, 2).proj.bias is None
    highway = HighwayBlock(3, 6)
    assert highway.gate.bias is not None and highway.carry[0].bias is None
    dense = DenseBlock(3, 6)
    assert dense.transition[2].bias is None
    assert ResidualBlock(3, 6).zero_init_residual is False  # off by default: variants start alike
