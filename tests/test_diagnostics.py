"""Diagnostics and the literature variants: what the numbers mean, checked on cases we can compute."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from skipbench.config import DiagnosticsConfig
from skipbench.models import build_model
from skipbench.models.blocks import HighwayBlock
from skipbench.models.encdec import valid_output_size
from skipbench.train.diagnostics import Diagnostics, count_flops, depth_ordered_layers

torch.set_num_threads(1)


def diag_cfg(**overrides):
    return OmegaConf.merge(OmegaConf.structured(DiagnosticsConfig), overrides)


class TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3, 4, bias=False)
        self.last = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.last(torch.relu(self.first(x)))


def test_update_ratio_equals_lr_grad_over_weight_for_plain_sgd():
    torch.manual_seed(0)
    model, lr = TwoLayer(), 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)  # no momentum: delta w = -lr * g
    diag = Diagnostics(model, diag_cfg())
    model(torch.randn(5, 3)).pow(2).sum().backward()
    expected = {name: lr * m.weight.grad.norm().item() / m.weight.norm().item() for name, m in depth_ordered_layers(model)}
    grads = {name: m.weight.grad.norm().item() for name, m in depth_ordered_layers(model)}
    diag.after_backward(True)
    diag.before_step(True)
    opt.step()
    diag.after_step(True)
    values = diag.scalars(step=1)
    assert values["update_ratio/00_first"] == pytest.approx(expected["first"], rel=1e-5)
    assert values["update_ratio/01_last"] == pytest.approx(expected["last"], rel=1e-5)
    assert values["grad_norm/00_first"] == pytest.approx(grads["first"], rel=1e-5)
    assert values["grad_ratio/first_over_last"] == pytest.approx(grads["first"] / grads["last"], rel=1e-5)
    assert values["weight_norm/01_last"] == pytest.approx(model.last.weight.norm().item(), rel=1e-5)


def test_nothing_measured_off_log_steps_and_switches_work():
    model = TwoLayer()
    diag = Diagnostics(model, diag_cfg(update_ratios=False, weight_norms=False))
    model(torch.randn(2, 3)).sum().backward()
    diag.after_backward(False)
    diag.before_step(False)
    diag.after_step(False)
    assert diag.scalars(1) == {}
    diag.after_backward(True)
    keys = set(diag.scalars(2))
    assert "grad_norm/total" in keys and not any(k.startswith(("update_ratio/", "weight_norm/")) for k in keys)


def test_activation_stats_and_figures_for_every_block():
    model = build_model("resnet", width=4, depth=2)
    diag = Diagnostics(model, diag_cfg())
    probe = torch.rand(4, 1, 16, 16)
    stats = diag.activations(probe)
    blocks = [k for k in stats if k.startswith("act_std/")]
    assert len(blocks) == 2 * 2 + 1  # enc0, enc1, bottleneck, dec1, dec0: one block each
    assert all(math.isfinite(v) for v in stats.values())
    assert model.training  # the probe must not leave the model in eval mode
    model(probe).sum().backward()
    diag.after_backward(True)
    diag.scalars(1)
    figures = diag.figures()
    assert set(figures) == {"grad_flow/heatmap", "grad_flow/by_depth"}


def test_custom_scalar_layout_splits_encoder_and_decoder():
    diag = Diagnostics(build_model("unet_concat", width=4, depth=2), diag_cfg())
    layout = diag.layout()
    assert set(layout["gradient norm by section"]) == {"enc", "bottleneck", "dec", "head"}
    assert layout["vanishing gradients"]["first / last layer grad norm"][1] == ["grad_ratio/first_over_last"]


@pytest.mark.parametrize("size,depth,blocks", [(572, 4, 1), (64, 2, 1), (65, 2, 1), (100, 2, 2)])
def test_unet_crop_output_size_matches_formula(size, depth, blocks):
    model = build_model("unet_crop", width=2, depth=depth, blocks_per_level=blocks).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 1, size, size))
    assert out.shape[-1] == out.shape[-2] == valid_output_size(size, depth, blocks)


def test_original_unet_numbers():
    # Ronneberger et al. 2015, Fig. 1: a 572x572 input tile gives a 388x388 output map.
    assert valid_output_size(572, 4, 1) == 388


def test_highway_gate_starts_near_carry():
    block = HighwayBlock(4, 4, gate_bias=-3.0)
    block.reset_skip_init()
    nn.init.zeros_(block.gate.weight)
    x = torch.randn(2, 4, 8, 8)
    gate = torch.sigmoid(block.gate(block.carry(x)))
    assert torch.allclose(gate, torch.full_like(gate, 1 / (1 + math.exp(3))))
    # the gate's bias really comes from the model's config knob
    model = build_model("highway", width=4, depth=1, highway_gate_bias=-2.5)
    biases = [m.gate.bias for m in model.modules() if isinstance(m, HighwayBlock)]
    assert biases and all(torch.allclose(b, torch.full_like(b, -2.5)) for b in biases)


def test_zero_init_residual_flag():
    model = build_model("resnet", width=4, depth=1, zero_init_residual=True)
    bn2 = [m.bn2.weight for m in model.modules() if hasattr(m, "shortcut")]
    assert bn2 and all(torch.count_nonzero(w) == 0 for w in bn2)


def test_flops_counts_a_known_conv():
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    assert count_flops(conv, torch.zeros(1, 2, 8, 8)) == 2 * 3 * 8 * 8 * 2 * 9


def test_plain_deep_classifier_has_no_skips():
    deep = build_model("plain", head="classes", out_channels=4, width=4, depth=2, blocks_per_level=8)
    names = [n for n, _ in depth_ordered_layers(deep)]
    assert not any("shortcut" in n or "gate" in n or "dec" in n for n in names)
    assert len(names) == 3 * 8 * 2 + 1  # 3 stages x 8 blocks x 2 convs + the linear head


@pytest.mark.parametrize("blocks", [1, 3])
def test_dense_stage_is_one_block_with_twice_the_layers(blocks):
    from skipbench.models.blocks import DenseBlock

    model = build_model("densenet", width=8, depth=2, blocks_per_level=blocks)
    dense = [m for m in model.modules() if isinstance(m, DenseBlock)]
    assert len(dense) == 5  # enc0, enc1, bottleneck, dec1, dec0: one dense block per stage
    assert all(len(d.layers) == 2 * blocks for d in dense)  # the same 3x3 conv count as 2 convs x blocks
    # each layer reads every earlier layer's output: input width grows by `growth` per layer
    layers = dense[0].layers
    growth = layers[0].conv.out_channels
    assert [l.conv.in_channels for l in layers] == [layers[0].conv.in_channels + i * growth for i in range(len(layers))]
