"""The skeleton and every registered variant: shapes, gradients, merges, depth order, initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from skipbench.models import MODELS, EncoderDecoder, build_model, list_models
from skipbench.models.blocks import HighwayBlock, ResidualBlock
from skipbench.models.encdec import valid_output_size
from skipbench.models.merges import AddMerge, ConcatMerge, CropConcatMerge, NoMerge, match_size
from skipbench.train.diagnostics import WEIGHT_LAYERS, depth_ordered_layers

from conftest import MODEL_NAMES, tiny_model

SIZES = [32, 33, 37]  # even, and odd sizes that leave a remainder at different levels
# Valid-conv variants (padding=0, e.g. unet_crop) lose 4 px per block and need larger inputs.
VALID_SIZES = [64, 65, 69]
PADDED = [n for n in MODEL_NAMES if MODELS[n].padding == 1]
VALID = [n for n in MODEL_NAMES if MODELS[n].padding == 0]


# Output sizes of the valid-conv skeleton, worked out by hand (a block's two 3x3 convs lose 4 px,
# a max-pool floors half, an up-conv doubles), e.g. depth 2: 64 -> 60 -> 30 -> 26 -> 13 -> 9 (bottleneck)
# -> 18 -> 14 -> 28 -> 24. Keyed by (size, depth, blocks_per_level).
VALID_OUT = {(64, 2, 1): 24, (65, 2, 1): 24, (69, 2, 1): 28, (61, 2, 1): 20, (60, 2, 1): 20,
             (100, 1, 2): 68, (572, 4, 1): 388}


def _valid_out(size: int, depth: int) -> int:
    return VALID_OUT[(size, depth, 1)]


def test_valid_output_size_hand_derived():
    for (size, depth, blocks), expected in VALID_OUT.items():
        assert valid_output_size(size, depth, blocks) == expected, (size, depth, blocks)


def test_list_models_is_every_model_config():
    # the config files are a second, independent list of the variants
    from conftest import group_options

    assert list_models() == [o for o in group_options("model") if o != "custom"]  # custom: your own nn.Module
    assert {"autoencoder", "unet_concat", "resnet", "densenet", "highway", "unet_crop"} <= set(list_models())


def _check_grads(model, name):
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"


def _forward_backward(name: str, depth: int, size: int) -> torch.Tensor:
    """A tiny ``name`` in train mode on a ``[2, 1, size, size]`` batch: finite output, every parameter a
    finite gradient; returns the output."""
    torch.manual_seed(0)
    model = tiny_model(name, depth=depth)
    model.train()
    out = model(torch.rand(2, 1, size, size))
    assert torch.isfinite(out).all()
    out.sum().backward()
    _check_grads(model, name)
    return out.detach()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", PADDED)
def test_pixels_head_shape_and_gradients(name, size):
    out = _forward_backward(name, depth=3, size=size)
    assert out.shape == (2, 1, size, size)


def test_there_is_a_padded_variant():
    assert PADDED


@pytest.mark.parametrize("size", VALID_SIZES)
@pytest.mark.parametrize("name", VALID)
def test_valid_conv_variants_shape_and_gradients(name, size):
    out = _forward_backward(name, depth=2, size=size)
    expected = _valid_out(size, 2)
    assert expected >= 1
    assert out.shape == (2, 1, expected, expected)
    assert valid_output_size(size, 2, 1) == expected


def test_valid_output_size_is_the_original_unet():
    # Ronneberger et al. 2015, Fig. 1: a 572x572 input tile gives a 388x388 output map at depth 4.
    assert valid_output_size(572, 4, 1) == 388
    model = build_model("autoencoder", long_skip="crop_concat", padding=0, width=1, depth=4).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 572, 572)).shape == (1, 1, 388, 388)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pixels_head_other_channel_counts(name):
    size = 21 if MODELS[name].padding else 61
    model = tiny_model(name, depth=2, in_channels=3, out_channels=5)
    out = model(torch.rand(2, 3, size, size - 1))
    expected = (size, size - 1) if MODELS[name].padding else (_valid_out(size, 2), _valid_out(size - 1, 2))
    assert out.shape == (2, 5, *expected)


@pytest.mark.parametrize("size", [32, 33])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_classes_head(name, size):
    torch.manual_seed(0)
    if not MODELS[name].padding:
        size += 60  # valid convs: the bottleneck must keep at least one pixel
    model = tiny_model(name, depth=3, out_channels=4, head="classes")
    model.train()
    out = model(torch.rand(2, 1, size, size))
    assert out.shape == (2, 4)
    assert torch.isfinite(out).all()
    assert model.dec_names == []
    out.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_unknown_arguments_rejected():
    with pytest.raises(ValueError, match="long_skip"):
        EncoderDecoder(long_skip="bogus")
    with pytest.raises(ValueError, match="block"):
        EncoderDecoder(block="bogus")
    with pytest.raises(ValueError, match="head"):
        EncoderDecoder(head="bogus")
    with pytest.raises(ValueError, match="padding"):
        EncoderDecoder(padding=2)
    for long_skip in ("concat", "add"):  # these need equal sizes, which valid convs do not give
        with pytest.raises(ValueError):
            EncoderDecoder(long_skip=long_skip, padding=0)


# ------------------------------------------------------------------ merges
def test_add_merge_projects_when_channels_differ():
    merge = AddMerge(8, 4)  # up has 8 channels, the skip 4
    convs = [m for m in merge.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1
    assert convs[0].kernel_size == (1, 1)
    assert (convs[0].in_channels, convs[0].out_channels) == (4, 8)
    assert merge.out_ch == 8
    up, skip = torch.rand(2, 8, 5, 5), torch.rand(2, 4, 5, 5)
    out = merge(up, skip)
    assert out.shape == up.shape
    torch.testing.assert_close(out, up + convs[0](skip))


def test_add_merge_is_parameter_free_when_channels_agree():
    merge = AddMerge(4, 4)
    assert sum(p.numel() for p in merge.parameters()) == 0
    up, skip = torch.rand(2, 4, 5, 5), torch.rand(2, 4, 5, 5)
    torch.testing.assert_close(merge(up, skip), up + skip)
    torch.testing.assert_close(merge(up), up)


def test_crop_concat_merge_crops_the_skip():
    up = torch.rand(1, 2, 4, 4)
    skip = torch.arange(3 * 8 * 8, dtype=torch.float32).view(1, 3, 8, 8)
    out = CropConcatMerge(2, 3)(up, skip)
    assert out.shape == (1, 5, 4, 4)
    torch.testing.assert_close(out[:, :3], skip[..., 2:6, 2:6])
    torch.testing.assert_close(out[:, 3:], up)


def test_concat_and_none_merges():
    up, skip = torch.rand(2, 3, 4, 4), torch.rand(2, 5, 4, 4)
    cat = ConcatMerge(3, 5)
    assert cat.out_ch == 8
    torch.testing.assert_close(cat(up, skip), torch.cat([skip, up], dim=1))
    none = NoMerge(3, 5)
    assert none.out_ch == 3
    assert none(up, skip) is up


def _offset_of(block: torch.Tensor, big: torch.Tensor) -> list[tuple[int, int]]:
    """All (top, left) where ``block`` sits inside ``big`` exactly."""
    h, w = block.shape[-2:]
    H, W = big.shape[-2:]
    return [(i, j) for i in range(H - h + 1) for j in range(W - w + 1)
            if torch.equal(big[..., i:i + h, j:j + w], block)]


@pytest.mark.parametrize("src,dst", [((3, 3), (5, 5)), ((3, 4), (6, 7)), ((4, 4), (5, 4)), ((2, 5), (2, 8))])
def test_match_size_pads_with_zeros_centred(src, dst):
    x = torch.arange(1, 1 + 2 * src[0] * src[1], dtype=torch.float32).view(1, 2, *src)  # no zeros inside
    y = match_size(x, dst)
    assert y.shape == (1, 2, *dst)
    offsets = _offset_of(x, y)
    assert len(offsets) == 1
    top, left = offsets[0]
    dh, dw = dst[0] - src[0], dst[1] - src[1]
    # centred: the margins on either side differ by at most one pixel
    assert abs(top - (dh - top)) <= 1 and abs(left - (dw - left)) <= 1
    rest = y.clone()
    rest[..., top:top + src[0], left:left + src[1]] = 0
    assert (rest == 0).all(), "padding must be zeros"


@pytest.mark.parametrize("src,dst", [((5, 5), (3, 3)), ((6, 7), (3, 4)), ((5, 4), (4, 4)), ((8, 2), (5, 2))])
def test_match_size_crops_centred(src, dst):
    x = torch.arange(2 * src[0] * src[1], dtype=torch.float32).view(1, 2, *src)
    y = match_size(x, dst)
    assert y.shape == (1, 2, *dst)
    offsets = _offset_of(y, x)
    assert len(offsets) == 1
    top, left = offsets[0]
    dh, dw = src[0] - dst[0], src[1] - dst[1]
    assert abs(top - (dh - top)) <= 1 and abs(left - (dw - left)) <= 1


def test_match_size_same_size_is_identity():
    x = torch.rand(1, 1, 4, 5)
    assert match_size(x, (4, 5)) is x


def test_match_size_mixed_pad_and_crop():
    x = torch.arange(1, 1 + 4 * 6, dtype=torch.float32).view(1, 1, 4, 6)
    y = match_size(x, (6, 4))  # pad rows by 2, crop columns by 2
    assert y.shape == (1, 1, 6, 4)
    torch.testing.assert_close(y[..., 1:5, :], x[..., :, 1:5])
    assert (y[..., 0, :] == 0).all() and (y[..., 5, :] == 0).all()


@pytest.mark.parametrize("size", [33, 37])
def test_crop_concat_long_skip_odd_sizes(size):
    model = build_model("unet_concat", long_skip="crop_concat", width=4, depth=3)
    x = torch.rand(2, 1, size, size)
    assert model(x).shape == x.shape


# ------------------------------------------------------------------ same skeleton, different skips
def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_concat_adds_skip_channels_to_first_decoder_conv():
    """Plain blocks: concat vs none differs only in each decoder stage's first conv (in = up + skip)."""
    width, depth = 4, 3
    none = build_model("autoencoder", width=width, depth=depth)
    concat = build_model("autoencoder", long_skip="concat", width=width, depth=depth)
    s_none, s_cat = none.state_dict(), concat.state_dict()
    assert s_none.keys() == s_cat.keys()
    differing = {k for k in s_none if s_none[k].shape != s_cat[k].shape}
    assert differing == {f"dec{i}.stage.0.conv1.weight" for i in range(depth)}
    expected_extra = 0
    for i in range(depth):
        ch = width * 2**i
        w_none, w_cat = s_none[f"dec{i}.stage.0.conv1.weight"], s_cat[f"dec{i}.stage.0.conv1.weight"]
        assert w_none.shape == (ch, ch, 3, 3)
        assert w_cat.shape == (ch, 2 * ch, 3, 3)  # skip_ch = ch extra input channels
        expected_extra += ch * ch * 9
    assert _n_params(concat) - _n_params(none) == expected_extra


@pytest.mark.parametrize("block", ["plain", "residual", "dense", "highway"])
def test_concat_has_more_params_than_none_for_every_block(block):
    none = build_model("autoencoder", long_skip="none", block=block, width=4, depth=3)
    concat = build_model("autoencoder", long_skip="concat", block=block, width=4, depth=3)
    assert _n_params(concat) > _n_params(none)
    # the encoder and bottleneck are untouched by the long skip
    for name in [*none.enc_names, "bottleneck"]:
        assert _n_params(getattr(none, name)) == _n_params(getattr(concat, name))


def test_add_merge_with_equal_channels_costs_no_params():
    # every decoder level merges ch[i] upsampled channels with ch[i] skip channels: identity projection
    assert _n_params(tiny_model("unet_add")) == _n_params(tiny_model("autoencoder"))


def _level_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple]]:
    shapes = []
    names = [*model.enc_names, "bottleneck", *model.dec_names]
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: shapes.append((n, tuple(o.shape))))
             for n in names]
    model(x)
    for h in hooks:
        h.remove()
    return shapes


def test_all_variants_share_levels_and_widths():
    reference = None
    for name in MODEL_NAMES:
        model = tiny_model(name, depth=3)
        assert model.enc_names == ["enc0", "enc1", "enc2"]
        assert model.dec_names == ["dec2", "dec1", "dec0"]
        size = 33 if MODELS[name].padding else 140  # valid convs at depth 3 need >= 124 px
        shapes = _level_shapes(model, torch.rand(2, 1, size, size))
        levels = [(n, s[:2]) for n, s in shapes]  # names in call order, batch and channels
        if reference is None:
            reference = levels
            # level i has width * 2**i channels
            assert [s[1] for n, s in levels if n.startswith("enc")] == [4, 8, 16]
            assert [s[1] for n, s in levels if n.startswith("dec")] == [16, 8, 4]
        assert levels == reference, name
        if MODELS[name].padding:  # padded variants keep each level's spatial size too
            expected = [(33, 33), (16, 16), (8, 8), (4, 4), (8, 8), (16, 16), (33, 33)]
            assert [s[2:] for _, s in shapes] == expected, name


@pytest.mark.parametrize("head", ["pixels", "classes"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_depth_ordered_layers_follow_forward_order(name, head):
    """Registration order must equal call order, so gradient-norm tags sort by depth."""
    model = tiny_model(name, depth=2, head=head, out_channels=3 if head == "classes" else 1)
    size = 16 if MODELS[name].padding else 64
    layers = depth_ordered_layers(model)
    all_weight_layers = [m for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    assert len(layers) == len(all_weight_layers)
    calls: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: calls.append(n)) for n, m in layers]
    model(torch.rand(2, 1, size, size))
    for h in hooks:
        h.remove()
    assert calls == [n for n, _ in layers]


# ================================================================== found by mutation testing (round 2)
# Written from mutmut's survivors in issue 15m (docs/testing.md), formerly tests/test_mutants_models.py:
# the skeleton's initialisation, the skip init options and depth 0; expected values follow from the
# documented initialisation and shapes.
@pytest.mark.parametrize("name,kwargs", [("unet_add", {}), ("highway", {"highway_gate_bias": -1.5}),
                                         ("resunet", {"zero_init_residual": True}), ("unet_crop", {})])
def test_initialisation_is_kaiming_fan_in_with_zero_biases(name, kwargs):
    torch.manual_seed(0)
    model = build_model(name, width=16, depth=2, **kwargs)
    for mod_name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # torch's fan_in: weight dim 1 times the kernel area (also for transposed convs)
            fan_in = m.weight.shape[1] * math.prod(m.weight.shape[2:])
            if m.weight.numel() >= 1000:  # enough samples for the std to be within a few %
                assert m.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1), mod_name
            if m.bias is not None:
                gate = mod_name.endswith(".gate")
                expected = kwargs.get("highway_gate_bias", 0.0) if gate else 0.0
                assert torch.all(m.bias == expected), mod_name
        elif isinstance(m, nn.BatchNorm2d):
            zeroed = kwargs.get("zero_init_residual") and mod_name.endswith(".bn2")
            assert torch.all(m.weight == (0.0 if zeroed else 1.0)) and torch.all(m.bias == 0), mod_name


def test_skip_init_options_reach_the_blocks():
    resnet = build_model("resnet", width=4, depth=1, zero_init_residual=True)
    blocks = [m for m in resnet.modules() if isinstance(m, ResidualBlock)]
    assert blocks and all(b.zero_init_residual for b in blocks)
    highway = build_model("highway", width=4, depth=1, highway_gate_bias=0.5)
    gates = [m.gate.bias for m in highway.modules() if isinstance(m, HighwayBlock)]
    assert gates and all(torch.all(g == 0.5) for g in gates)
    dense = build_model("densenet", width=8, depth=1, dense_growth=3, blocks_per_level=2)
    first = dense.enc0[0]  # one dense block per stage, 2 x blocks_per_level layers of 3 new channels
    assert len(first.layers) == 4 and all(layer.conv.out_channels == 3 for layer in first.layers)


def test_depth_zero_is_one_stage_at_full_resolution():
    model = EncoderDecoder(in_channels=2, out_channels=3, depth=0, width=4)
    assert model.enc_names == [] and model.dec_names == []
    x = torch.rand(1, 2, 7, 5)
    assert model(x).shape == (1, 3, 7, 5)
    assert model.bottleneck[0].conv1.in_channels == 2  # the input feeds the bottleneck directly
