"""The papers' own networks: parameter counts against the papers' tables, the 2015 U-Net's geometry (on the
meta device: 31 M parameters cost no memory), forward/backward shapes, shared layer names, one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skipbench.errors import ConfigError
from skipbench.models import MODELS, build_model
from skipbench.models.encdec import valid_output_size
from skipbench.models.papers import RedNet
from skipbench.models.shortcuts import ZeroPadShortcut
from skipbench.train.diagnostics import depth_ordered_layers, skeleton_layers

from conftest import compose

PAPER = ("cifar_resnet", "cifar_plain", "unet2015", "densenet_bc", "rednet")
# Tiny builds of every variant, the papers' ones at their own small sizes (the others: the skeleton's).
TINY_KW = {"cifar_resnet": dict(n=1, width=4), "cifar_plain": dict(n=1, width=4), "densenet_bc": dict(L=10, k=4),
           "rednet": dict(depth=6, width=4, skip_every=1), "unet2015": dict(depth=1, width=4)}


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def cifar(name: str = "cifar_resnet", **kw) -> nn.Module:
    return build_model(name, in_channels=3, out_channels=10, head="classes", **kw)


def conv(i: int, o: int, k: int = 3, bias: bool = False) -> int:
    return k * k * i * o + (o if bias else 0)


def resnet_option_a(n: int) -> int:
    """He et al.'s CIFAR ResNet-(6n+2) by hand: stem, 3 stages of 2n convs (each + BN), linear 64 -> 10."""
    total = conv(3, 16) + 2 * 16
    for i, (cin, c) in enumerate([(16, 16), (16, 32), (32, 64)]):
        total += conv(cin, c) + (2 * n - 1) * conv(c, c) + 2 * n * 2 * c
    return total + 64 * 10 + 10


# He et al. 2016a, Table 6 (parameters, printed in M to 2 significant digits).
TABLE6 = {3: 0.27, 5: 0.46, 7: 0.66, 9: 0.85, 18: 1.7}


@pytest.mark.parametrize("n, paper", TABLE6.items())
def test_cifar_resnet_parameters_match_table6(n, paper):
    m = cifar(n=n)
    got = params(m)
    assert got == resnet_option_a(n)  # option A: no projection parameters
    assert round(got / 1e6, 2 if paper < 1 else 1) == paper
    assert len([l for l in depth_ordered_layers(m) if isinstance(l[1], nn.Conv2d)]) == 6 * n + 1  # + the linear = 6n+2


def test_option_b_adds_the_two_projections_and_plain_has_no_shortcut_parameters():
    a, b, c = cifar(n=3), cifar(n=3, shortcut="identity"), cifar(n=3, shortcut="conv1x1")
    assert params(b) - params(a) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # 1x1 conv + BN at each stage change
    assert params(c) > params(b)  # option C: a projection on every block
    assert sum(isinstance(m, ZeroPadShortcut) for m in a.modules()) == 2
    plain = cifar("cifar_plain", n=3)
    assert params(plain) == params(a) and not any(isinstance(m, ZeroPadShortcut) for m in plain.modules())


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    x = torch.randn(2, 4, 8, 8)
    y = ZeroPadShortcut(4, 8, stride=2)(x)
    assert y.shape == (2, 8, 4, 4)
    assert torch.equal(y[:, 2:6], x[:, :, ::2, ::2]) and not y[:, :2].any() and not y[:, 6:].any()


def test_cifar_resnet_stages_are_32_16_8_px():
    m, sizes = cifar(n=1), []
    for name in ("enc0", "enc1", "bottleneck"):
        getattr(m, name).register_forward_hook(lambda mod, i, o: sizes.append(tuple(o.shape[1:])))
    m(torch.randn(2, 3, 32, 32))
    assert sizes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    assert isinstance(m.pool, nn.Identity)  # strided convs, no max-pool
    assert m.enc1[0].conv1.stride == (2, 2) and m.enc0.stem[0].in_channels == 3


def unet_by_hand(c_in: int = 1, c_out: int = 2) -> int:
    """Ronneberger et al.'s U-Net: 3x3 convs with biases, 2x2 up-convs halving channels, a 1x1 head."""
    ch = [64, 128, 256, 512, 1024]
    total, prev = 0, c_in
    for c in ch:
        total += conv(prev, c, bias=True) + conv(c, c, bias=True)
        prev = c
    for c in reversed(ch[:-1]):
        total += conv(2 * c, c, k=2, bias=True) + conv(2 * c, c, bias=True) + conv(c, c, bias=True)
    return total + conv(64, c_out, k=1, bias=True)


def test_unet2015_is_31_million_parameters_and_maps_572_to_388_on_meta():
    with torch.device("meta"):
        m = build_model("unet2015", in_channels=1, out_channels=2, head="pixels")
        out = m(torch.empty(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388) and out.device.type == "meta"
    assert params(m) == unet_by_hand() and round(params(m) / 1e6, 1) == 31.0
    assert not any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())  # 2015: no batch norm
    assert [getattr(m, f"enc{i}")[0].conv1.out_channels for i in range(4)] + [m.bottleneck[0].conv1.out_channels] == \
        [64, 128, 256, 512, 1024]


def test_unet2015_refuses_sizes_its_valid_convs_cannot_take():
    from skipbench.config import check_image_size

    cfg = compose(["model=unet2015", "task=segment"])
    check_image_size(cfg, 572)
    for size in (64, 571):
        with pytest.raises(ConfigError, match=f"{size} px"):
            check_image_size(cfg, size)


def test_densenet_bc_100_12_is_0_8_million_parameters():
    m = build_model("densenet_bc", in_channels=3, out_channels=10, head="classes")
    assert round(params(m) / 1e6, 1) == 0.8  # Huang et al. 2017, Table 2
    assert params(m) == 769_162
    blocks = [m.enc0[1], m.enc1[0], m.bottleneck[0]]
    assert [len(b.layers) for b in blocks] == [16, 16, 16]
    assert [b.out_ch for b in blocks] == [108, 150, 342]  # 24+192 -> 108, 108+192 -> 150, 150+192 = 342
    assert blocks[0].layers[0].bottleneck[2].out_channels == 48  # 4k
    assert isinstance(blocks[2].transition, nn.Identity)
    assert m.enc0.stem.out_channels == 24  # 2k


def test_densenet_bc_compression_reaches_the_transitions():
    m = build_model("densenet_bc", in_channels=3, out_channels=10, head="classes", compression=1.0)
    assert m.enc0[1].out_ch == 216


def rednet_by_hand(depth: int, width: int, c: int) -> int:
    half = depth // 2
    return (conv(c, width, bias=True) + (half - 1) * conv(width, width, bias=True)) * 2 - width + c


def test_red30_is_15_convs_15_deconvs_128_wide_with_7_symmetric_skips():
    m = build_model("rednet", in_channels=1, out_channels=1, head="pixels")
    convs = [x for x in m.encoder if isinstance(x, nn.Conv2d)]
    deconvs = [x for x in m.decoder if isinstance(x, nn.ConvTranspose2d)]
    assert len(convs) == len(deconvs) == 15 and {x.out_channels for x in convs} == {128}
    assert len(m.merges) == 7 and params(m) == rednet_by_hand(30, 128, 1)
    assert sorted(m.skip_from.values()) == [1, 3, 5, 7, 9, 11, 13]  # conv 2, 4, ..., 14 (1-based)
    # each skip lands at the deconv whose output mirrors that conv's output
    assert all(j == 15 - 2 - i for j, i in m.skip_from.items())
    none = build_model("rednet", in_channels=1, out_channels=1, head="pixels", long_skip="none")
    assert params(none) == params(m)


def test_rednet_skips_change_the_output_and_without_them_nothing_reaches_past():
    torch.manual_seed(0)
    with_skips = RedNet(1, 1, depth=6, width=4, skip_every=1)
    without = RedNet(1, 1, depth=6, width=4, skip_every=1, long_skip="none")
    without.load_state_dict(with_skips.state_dict())
    x = torch.randn(2, 1, 12, 12)
    assert not torch.allclose(with_skips(x), without(x))


@pytest.mark.parametrize("name", PAPER)
def test_forward_backward_shapes(name):
    kw = TINY_KW[name]
    classify = name in ("cifar_resnet", "cifar_plain", "densenet_bc")
    m = build_model(name, in_channels=3, out_channels=10 if classify else 3, head="classes" if classify else "pixels", **kw)
    size = 60 if name == "unet2015" else 32
    out = m(torch.randn(2, 3, size, size))
    side = valid_output_size(size, 1, 1) if name == "unet2015" else size  # 60 -> 44 px at depth 1
    expect = (2, 10) if classify else (2, 3, side, side)
    assert out.shape == expect
    out.float().pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters() if p.ndim > 1), name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_variant_names_its_layers_by_depth(name):
    """Enumerates the papers' networks with the others: one unique tag per weight layer, sorted = forward order."""
    variant = MODELS[name]
    kw = TINY_KW.get(name, {"width": 4, **({"depth": 2} if variant.skeleton == "encdec" else {})})
    pixels = variant.skeleton in ("encdec", "rednet")
    m = build_model(name, in_channels=3, out_channels=3, head="pixels" if pixels else "classes", **kw)
    named, _ = skeleton_layers(m)
    tags = [t for t, _ in named]
    assert len(tags) == len(set(tags)) == len(depth_ordered_layers(m)), name
    assert tags == sorted(tags), name
    forward = {id(x): i for i, (_, x) in enumerate(depth_ordered_layers(m))}
    main = [forward[id(x)] for t, x in named if "." not in t.split("/")[1]]
    assert main == sorted(main), name


def test_cifar_resnet_shares_the_skeleton_resnets_layer_names():
    """ResNet-(6n+2) is the skeleton's classifier (depth 2, n blocks a level) plus its stem, 00_enc0/conv0."""
    ours = [t for t, _ in skeleton_layers(cifar(n=2, shortcut="identity"))[0]]
    skeleton = [t for t, _ in skeleton_layers(build_model("resnet", in_channels=3, out_channels=10, head="classes",
                                                          depth=2, width=16, blocks_per_level=2))[0]]
    assert ours[0] == "00_enc0/conv0"
    assert set(ours) - set(skeleton) == {"00_enc0/conv0"}
    plain = [t for t, _ in skeleton_layers(cifar("cifar_plain", n=2))[0]]
    assert plain == [t for t in ours if "." not in t]  # the plain twin: the same main path, no shortcuts


@pytest.mark.parametrize("name, kw, words", [
    ("cifar_resnet", dict(n=0), "n=0: must be an integer in 1..200"),
    ("cifar_plain", dict(n=201), "n=201: must be an integer in 1..200"),
    ("densenet_bc", dict(L=99), "L=99: must be 6m + 4"),
    ("densenet_bc", dict(compression=0.0), "compression=0.0: must be in (0, 1]"),
    ("rednet", dict(depth=29), "depth=29: must be an even integer"),
    ("rednet", dict(long_skip="concat"), "long_skip=concat"),
])
def test_out_of_range_is_one_line(name, kw, words):
    head = "pixels" if name == "rednet" else "classes"
    with pytest.raises(ConfigError) as info:
        build_model(name, in_channels=3, out_channels=3, head=head, **kw)
    assert str(info.value).startswith(words) and "\n" not in str(info.value)


def test_classifiers_refuse_a_pixel_task():
    for name in ("cifar_resnet", "densenet_bc"):
        with pytest.raises(ConfigError, match="classify"):
            build_model(name, in_channels=1, out_channels=1, head="pixels")


def test_n_reaches_the_model_through_the_config():
    from hydra.utils import instantiate

    cfg = compose(["model=cifar_resnet", "model.n=5", "task=classify"])
    m = instantiate(cfg.model, in_channels=3, out_channels=10, head="classes")
    assert params(m) == resnet_option_a(5)
    cfg = compose(["model=densenet_bc", "model.L=40", "model.k=4", "task=classify"])
    m = instantiate(cfg.model, in_channels=3, out_channels=10, head="classes")
    assert len(m.enc0[1].layers) == 6 and m.enc0.stem.out_channels == 8
