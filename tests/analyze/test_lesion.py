"""Lesions (skipbench.analyze.lesion, the Lesionable flags of the blocks): exact on freshly built models.

A deleted residual branch leaves exactly the shortcut, a deleted dense layer adds zeros, a deleted highway
block carries its input, a plain block that changes shape is refused, and flags/weights are as before."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from conftest import tiny_model
from skipbench.analyze import lesion as L
from skipbench.errors import ConfigError
from skipbench.models.blocks import (DenseBlock, HighwayBlock, PlainBlock, PreActResidualBlock,
                                     ResidualBlock)


def _randn(*shape: int) -> torch.Tensor:
    """Test inputs from a local generator (the global RNG untouched)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)))


def _settled(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Non-trivial BatchNorm statistics (a few train-mode forwards), then eval mode."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


def _flags(model: nn.Module) -> list[bool]:
    return [m.lesioned for m in model.modules() if isinstance(m, L.Lesionable)]


class ShortcutOnly(nn.Module):
    """A residual block's shortcut path written out by hand: ``relu(P(x))`` (no ReLU after a pre-act block)."""

    def __init__(self, block: ResidualBlock) -> None:
        super().__init__()
        self.p, self.post = block.shortcut, block.post
        # a pre-activation block's projection reads relu(bn1(x)) (He et al. 2016b's code); the identity reads x
        self.pre = block.bn1 if isinstance(block, PreActResidualBlock) and not isinstance(block.shortcut, nn.Identity) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.p(x if self.pre is None else torch.relu(self.pre(x)))
        return torch.relu(s) if self.post else s


@pytest.mark.parametrize("name", ["resnet", "preact_resnet"])
def test_deleting_every_residual_branch_leaves_the_shortcut_path(name):
    model = tiny_model(name, blocks_per_level=2)
    x = _randn(2, 1, 16, 16)
    _settled(model, x)
    units = [u for _, u in L.lesion_units(model)]
    assert len(units) == 14 and all(isinstance(u, ResidualBlock) for u in units)
    hand = copy.deepcopy(model)
    for mod in list(hand.modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, ResidualBlock):
                setattr(mod, child_name, ShortcutOnly(child))
    assert not any(isinstance(m, ResidualBlock) for m in hand.modules())
    with torch.no_grad():
        intact = model(x)
        with L.lesioned(units):
            deleted = model(x)
        expected = hand(x)
    torch.testing.assert_close(deleted, expected, rtol=0, atol=0)
    assert not torch.allclose(deleted, intact)  # the branches did something before
    assert _flags(model) == [False] * len(_flags(model))


def test_residual_block_with_stride_and_projection_keeps_its_projection():
    block = ResidualBlock(4, 8, stride=2)
    x = _randn(2, 4, 8, 8)
    _settled(block, x)
    with torch.no_grad(), L.lesioned([block]):
        out = block(x)
        expected = torch.relu(block.shortcut[1](block.shortcut[0](x)))
    assert out.shape == (2, 8, 4, 4)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_lesioned_dense_layer_contributes_zeros():
    block = DenseBlock(4, 8, n_layers=2)
    x = _randn(2, 4, 8, 8)
    _settled(block, x)
    layers = list(block.layers)
    with torch.no_grad():
        with L.lesioned([layers[0]]):
            new = layers[0](x)
        assert new.shape == (2, layers[0].conv.out_channels, 8, 8) and torch.count_nonzero(new) == 0
        with L.lesioned(layers):
            out = block(x)
        g = [layer.conv.out_channels for layer in layers]
        expected = block.transition(torch.cat([x, x.new_zeros(2, g[0], 8, 8), x.new_zeros(2, g[1], 8, 8)], 1))
        intact = block(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert not torch.allclose(out, intact)


@pytest.mark.parametrize("in_ch,out_ch", [(4, 4), (4, 8)])
def test_lesioned_highway_block_returns_its_carried_input(in_ch, out_ch):
    block = HighwayBlock(in_ch, out_ch)
    x = _randn(2, in_ch, 8, 8)
    _settled(block, x)
    with torch.no_grad(), L.lesioned([block]):
        out = block(x)
        carried = x if in_ch == out_ch else block.carry[1](block.carry[0](x))
    torch.testing.assert_close(out, carried, rtol=0, atol=0)
    # the highway's transform is part of the block, not a unit of its own
    model = tiny_model("highway")
    assert all(isinstance(u, HighwayBlock) for _, u in L.lesion_units(model))


def test_plain_block_that_changes_shape_is_not_deletable():
    assert "channels 4 -> 8" in PlainBlock(4, 8).lesion_blocker()
    assert "stride 2" in PlainBlock(4, 4, stride=2).lesion_blocker()
    same = PlainBlock(4, 4)
    assert same.lesion_blocker() is None
    x = _randn(2, 4, 8, 8)
    with torch.no_grad(), L.lesioned([same]):
        torch.testing.assert_close(same(x), x, rtol=0, atol=0)
    valid = PlainBlock(4, 4, padding=0)  # valid convs: the identity is the centre, as crop_to aligns it
    with torch.no_grad(), L.lesioned([valid]):
        torch.testing.assert_close(valid(x), x[..., 2:-2, 2:-2], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="channels 4 -> 8"):
        with L.lesioned([PlainBlock(4, 8)]):
            pass


def test_single_lesions_report_the_plain_blocks_they_cannot_delete():
    model = tiny_model("plain").eval()
    x = _randn(2, 1, 16, 16)
    with torch.no_grad():
        base = model(x)
    score = lambda m: {"loss": float((m(x) - base).pow(2).mean())}  # noqa: E731
    with torch.no_grad():
        done, refused = L.single_lesions(model, score)
    units = dict(L.lesion_units(model))
    assert {r["block"] for r in refused} == {n for n, u in units.items() if u.in_ch != u.out_ch or u.stride != 1}
    assert refused and done and all("no identity" in r["why"] for r in refused)
    assert len(done) + len(refused) == len(units)
    assert all(d["loss"] > 0 for d in done)  # each deletion changed the output


def test_lesions_leave_flags_off_and_weights_untouched():
    model = tiny_model("resnet").eval()
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    x = _randn(2, 1, 16, 16)
    calls = []

    def score(m):
        calls.append(sum(_flags(m)))
        with torch.no_grad():
            return {"loss": float(m(x).pow(2).mean()), "psnr": float(-m(x).pow(2).mean())}

    L.single_lesions(model, score)
    curve = L.k_lesions(model, score, "psnr", k_max=3, draws=2, seed=0)
    assert [c["k"] for c in curve] == [1, 2, 3]
    assert calls == [1] * 7 + [1, 1, 2, 2, 3, 3]  # exactly k units deleted while scored
    units = [u for _, u in L.lesion_units(model)]
    with pytest.raises(RuntimeError), L.lesioned(units[:2]):
        raise RuntimeError("scoring failed")
    assert not any(_flags(model))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_k_draws_are_seeded_distinct_and_sorted():
    a = L.k_draws(7, 3, 5, seed=1)
    assert a == L.k_draws(7, 3, 5, seed=1) and a != L.k_draws(7, 3, 5, seed=2)
    assert all(len(set(p)) == 3 and p == sorted(p) and max(p) < 7 for p in a)


def test_long_skip_lesion_merge_sees_zeros():
    model = tiny_model("unet_concat").eval()
    merges = dict(L.lesion_units(model, long_skips=True))
    m = merges["dec1.merge"]
    skip, up = _randn(2, 3, 4, 4), _randn(2, 5, 4, 4)
    with L.lesioned([m]):
        out = m(up, skip)
    torch.testing.assert_close(out, torch.cat([torch.zeros_like(skip), up], 1), rtol=0, atol=0)


def test_unknown_block_is_one_line_naming_the_known_ones():
    model = tiny_model("resnet")
    with pytest.raises(ConfigError, match=r"lesion.blocks=enc9.0: no such block.*deletable: enc0.0, enc1.0"):
        L.select_units(model, ["enc0.0", "enc9.0"])
