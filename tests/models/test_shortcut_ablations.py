"""Pre-activation, He et al. 2016b's shortcut variants and stochastic depth, each against its formula on
small tensors, and each knob travelling from the composed config to the built blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from skipbench import seeds
from skipbench.models import build_model
from skipbench.models.blocks import Layers, PreActResidualBlock, ResidualBlock, place_blocks
from skipbench.models.shortcuts import DropoutJoin, DropPath, GatedJoin, Join, ScaledJoin

from conftest import compose


def _conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, padding=conv.padding)


def _bn_eval(block: nn.Module) -> nn.Module:
    """Non-trivial BN affine maps in eval mode (so the order of BN, ReLU and conv matters)."""
    g = torch.Generator().manual_seed(0)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = 0.5 + torch.rand(m.num_features, generator=g)
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.3
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.2
    return block.eval()


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    s = (1, -1, 1, 1)
    return (x - bn.running_mean.view(s)) / torch.sqrt(bn.running_var.view(s) + bn.eps) * bn.weight.view(s) + bn.bias.view(s)


# ------------------------------------------------------------------ pre-activation
def test_preact_order_is_bn_relu_conv_twice_and_the_identity_untouched():
    torch.manual_seed(0)
    b = _bn_eval(PreActResidualBlock(4, 4))
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        f = _conv(torch.relu(_bn(_conv(torch.relu(_bn(x, b.bn1)), b.conv1), b.bn2)), b.conv2)
        torch.testing.assert_close(b(x), x + f)  # no ReLU after the addition
        post = _conv(torch.relu(_bn(_conv(x, b.conv1), b.bn1)), b.conv2)  # the post-activation order is another block
        assert not torch.allclose(b(x), torch.relu(x + post))
    assert b.bn1.num_features == 4 and b.conv2.bias is None


def test_preact_projection_reads_the_preactivated_input():
    torch.manual_seed(0)
    b = _bn_eval(PreActResidualBlock(3, 6))
    x = torch.randn(2, 3, 5, 5)
    pre = torch.relu(_bn(x, b.bn1))
    proj, bn = b.shortcut
    with torch.no_grad():
        f = _conv(torch.relu(_bn(_conv(pre, b.conv1), b.bn2)), b.conv2)
        torch.testing.assert_close(b(x), f + _bn(_conv(pre, proj), bn))


def test_preact_model_ends_with_norm_relu_before_the_head():
    m = build_model("preact_resnet", width=4, depth=1, head="classes", out_channels=2)
    assert isinstance(m.post[0], nn.BatchNorm2d) and isinstance(m.post[1], nn.ReLU)
    assert isinstance(build_model("resnet", width=4, depth=1).post, nn.Identity)


# ------------------------------------------------------------------ He 2016b Table 1 shortcuts
def _shortcut_block(kind: str, **kw) -> ResidualBlock:
    torch.manual_seed(0)
    b = ResidualBlock(4, 4, shortcut=kind, **kw)
    b.reset_skip_init()
    return _bn_eval(b)


def _f(b: ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    return _bn(_conv(torch.relu(_bn(_conv(x, b.conv1), b.bn1)), b.conv2), b.bn2)


def test_scaled_shortcut():
    b = _shortcut_block("scaled", shortcut_scale=0.3)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(b(x), torch.relu(_f(b, x) + 0.3 * x))
    assert isinstance(b.join, ScaledJoin)


@pytest.mark.parametrize("kind", ["gated", "shortcut_gated"])
def test_gated_shortcuts(kind):
    b = _shortcut_block(kind, shortcut_gate_bias=-1.5)
    assert isinstance(b.join, GatedJoin) and torch.all(b.join.gate.bias == -1.5)  # the gate-bias knob
    nn.init.normal_(b.join.gate.weight, std=0.5)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        g = torch.sigmoid(_conv(x, b.join.gate))
        f = _f(b, x)
        expected = (g * f if kind == "gated" else f) + (1 - g) * x
        torch.testing.assert_close(b(x), torch.relu(expected))
        other = (f if kind == "gated" else g * f) + (1 - g) * x
        assert not torch.allclose(b(x), torch.relu(other))  # exclusive and shortcut-only differ


def test_conv1x1_shortcut_projects_even_when_shapes_agree():
    b = _shortcut_block("conv1x1")
    proj, bn = b.shortcut
    assert proj.kernel_size == (1, 1) and type(b.join) is Join
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(b(x), torch.relu(_f(b, x) + _bn(_conv(x, proj), bn)))
    assert isinstance(_shortcut_block("identity").shortcut, nn.Identity)


def test_dropout_shortcut_drops_in_training_only():
    b = _shortcut_block("dropout", shortcut_dropout=0.5)
    assert isinstance(b.join, DropoutJoin) and b.join.p == 0.5
    x = torch.rand(2, 4, 6, 6) + 1
    with torch.no_grad():
        torch.testing.assert_close(b(x), torch.relu(_f(b, x) + x))  # eval: the identity
        b.join.train()
        torch.manual_seed(3)
        s = b.join(torch.zeros_like(x), x, x)
        assert set(torch.unique(s / x).tolist()) <= {0.0, 2.0} and (s == 0).any()  # inverted dropout, p = 0.5


@pytest.mark.parametrize("kind,join", [("scaled", ScaledJoin), ("gated", GatedJoin), ("shortcut_gated", GatedJoin),
                                       ("dropout", DropoutJoin), ("conv1x1", Join)])
def test_shortcut_knob_reaches_every_residual_block(kind, join):
    cfg = compose(["model=resnet", f"model.shortcut={kind}", "model.shortcut_scale=0.25"])
    m = instantiate(cfg.model, in_channels=1, out_channels=1, head="pixels", width=4, depth=1)
    blocks = [x for x in m.modules() if isinstance(x, ResidualBlock)]
    assert blocks and all(type(b.join) is join for b in blocks)
    if kind == "scaled":
        assert all(b.join.scale == 0.25 for b in blocks)


# ------------------------------------------------------------------ stochastic depth
def test_drop_path_survival_decays_linearly_to_one_minus_rate():
    cfg = compose(["model=resnet", "model.drop_path=0.5", "model.blocks_per_level=2"])
    m = instantiate(cfg.model, in_channels=1, out_channels=1, head="pixels", width=4, depth=1)
    drops = [x.drop for x in m.modules() if isinstance(x, ResidualBlock)]
    L = len(drops)
    assert L == 6  # enc0, bottleneck, dec0: 2 blocks each
    assert [d.survival for d in drops] == pytest.approx([1 - l / L * 0.5 for l in range(1, L + 1)])
    assert drops[-1].survival == pytest.approx(0.5) and [d.index for d in drops] == list(range(1, L + 1))
    assert all(d.seed == cfg.seed for d in drops)


def test_drop_path_eval_never_drops_and_is_the_expectation():
    torch.manual_seed(0)
    b = ResidualBlock(4, 4, layers=Layers(norm="none"))
    place_blocks([b], 0.6)  # one block: survival 1 - 0.6 = 0.4
    assert b.drop.survival == pytest.approx(0.4)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        f = b.conv2(torch.relu(b.conv1(x)))
        b.eval()
        outs = {b(x).sum().item() for _ in range(20)}
        assert len(outs) == 1 and b.drop.calls == 0  # never a draw in eval
        torch.testing.assert_close(b(x), torch.relu(0.4 * f + x))
        b.train()
        seen = [b(x) for _ in range(400)]
    kept = [torch.allclose(y, torch.relu(f + x)) for y in seen]
    dropped = [torch.allclose(y, torch.relu(x)) for y in seen]
    assert all(k or d for k, d in zip(kept, dropped)) and b.drop.calls == 400
    assert sum(kept) / 400 == pytest.approx(0.4, abs=0.08)  # kept with probability survival
    torch.testing.assert_close(torch.stack(seen).mean(0), torch.relu(f + x) * 0.4 + torch.relu(x) * 0.6, atol=0.15, rtol=0.1)


def test_drop_path_draws_come_from_seed_step_and_block():
    d = DropPath(seed=7)
    d.index, d.survival = 3, 0.5
    draws = [d.keep() for _ in range(64)]
    expected = [bool(torch.rand((), generator=seeds.generator(7, "drop_path", (n, 3))) < 0.5) for n in range(64)]
    assert draws == expected and 10 < sum(draws) < 54
    other = DropPath(seed=8)
    other.index, other.survival = 3, 0.5
    assert [other.keep() for _ in range(64)] != draws  # the seed matters
    # the counter travels with the state dict: a restored module draws on where the first one stopped
    restored = DropPath(seed=7)
    restored.index, restored.survival = 3, 0.5
    restored.load_state_dict(d.state_dict())
    assert restored.calls == 64 and restored.keep() == d.keep()


def test_zero_drop_path_changes_nothing():
    b = ResidualBlock(4, 4)
    place_blocks([b], 0.0)
    assert b.drop.survival == 1.0
    b.train()
    b(torch.randn(2, 4, 5, 5))
    assert b.drop.calls == 0
