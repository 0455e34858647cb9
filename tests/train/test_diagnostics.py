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
from skipbench.models.registry import MODELS
from skipbench.train.diagnostics import (Diagnostics, GradNorms, count_flops, depth_ordered_layers, detail_categories,
                                         skeleton_layers)

from conftest import MODEL_NAMES

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
    # a model that is not the skeleton: its top-level children are the levels, in order
    assert values["z_layer/update_ratio/00_first/linear"] == pytest.approx(expected["first"], rel=1e-5)
    assert values["z_layer/update_ratio/01_last/linear"] == pytest.approx(expected["last"], rel=1e-5)
    assert values["z_layer/grad_norm/00_first/linear"] == pytest.approx(grads["first"], rel=1e-5)
    assert values["grad_ratio/first_over_last"] == pytest.approx(grads["first"] / grads["last"], rel=1e-5)
    assert values["z_layer/weight_norm/01_last/linear"] == pytest.approx(model.last.weight.norm().item(), rel=1e-5)
    assert values["grad_level/00_first"] == pytest.approx(math.log10(grads["first"]), rel=1e-5)


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
    assert "grad_norm/total" in keys and not any(k.startswith(("z_layer/update_ratio/", "z_layer/weight_norm/")) for k in keys)


def test_activation_stats_and_figures_for_every_block():
    model = build_model("resnet", width=4, depth=2)
    diag = Diagnostics(model, diag_cfg())
    probe = torch.rand(4, 1, 16, 16)
    stats = diag.activations(probe)
    blocks = [k for k in stats if k.startswith("z_layer/act_std/")]
    assert len(blocks) == 2 * 2 + 1  # enc0, enc1, bottleneck, dec1, dec0: one block each
    assert blocks == [f"z_layer/act_std/{lvl}/conv2" for lvl in ("00_enc0", "01_enc1", "02_bottleneck", "03_dec1", "04_dec0")]
    assert all(math.isfinite(v) for v in stats.values())
    assert model.training  # the probe must not leave the model in eval mode
    model(probe).sum().backward()
    diag.after_backward(True)
    diag.scalars(1)
    figures = diag.figures()
    assert set(figures) == {"z_layer/grad_flow/heatmap", "z_layer/grad_flow/by_depth"}


def test_custom_scalar_layout_leads_with_levels_and_tucks_away_layers():
    diag = Diagnostics(build_model("unet_concat", width=4, depth=2), diag_cfg())
    layout = diag.layout()
    # one chart per level (a line per run), by label so any depth matches; per-layer detail after, collapsed
    assert list(layout["gradient norm by level (log10)"]) == ["enc0", "enc1", "bottleneck", "dec1", "dec0", "head"]
    assert layout["gradient norm by level (log10)"]["bottleneck"][1] == [r"^grad_level/\d+_bottleneck$"]
    assert layout["vanishing gradients"]["first / last layer grad norm"][1] == ["^grad_ratio/first_over_last$"]
    titles = list(layout)
    assert titles[:2] == ["gradient norm by level (log10)", "vanishing gradients"]
    assert detail_categories(layout) == titles[2:] and "per layer: gradient norm" in titles
    # switched-off diagnostics get no charts that could never match
    off = Diagnostics(build_model("unet_concat", width=4, depth=2),
                      diag_cfg(weight_norms=False, update_ratios=False, activations=False)).layout()
    assert not {"per layer: weight norm", "per layer: update ratio", "per block: activation std"} & set(off)


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
    tags = [n for n, _ in skeleton_layers(deep)[0]]
    # 16 convs a level: zero-padded so conv10 sorts after conv09; the head keeps its skeleton level (2d+1)
    assert tags[:2] == ["00_enc0/conv01", "00_enc0/conv02"] and "00_enc0/conv16" in tags
    assert tags[-1] == "05_head/linear"


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


# ------------------------------------------------------------------ stable layer names across variants
def _tags(name: str, **kw) -> list[str]:
    kw.setdefault("width", 4)
    return [n for n, _ in skeleton_layers(build_model(name, depth=2, **kw))[0]]


def _main_path(tags: list[str]) -> list[str]:
    return [t for t in tags if "." not in t.split("/")[1]]  # extras are "conv2.shortcut"


@pytest.mark.parametrize("head", ["pixels", "classes"])
@pytest.mark.parametrize("blocks", [1, 2])
def test_shared_layers_have_the_same_tag_in_every_variant(head, blocks):
    """Every registered variant names the shared skeleton's layers alike; its own extras (shortcuts,
    gates, carries, dense transitions, merge projections) never shift them."""
    kw = dict(head=head, out_channels=3 if head == "classes" else 1, blocks_per_level=blocks)
    base = _tags("autoencoder", **kw)
    assert base == _main_path(base)  # the plain autoencoder is the bare skeleton
    for name in MODEL_NAMES:
        tags = _tags(name, **kw)
        assert set(base) <= set(tags), (name, sorted(set(base) - set(tags)))
        assert _main_path(tags) == base, name  # the same main path, nothing shifted or renamed
        assert len(tags) == len(set(tags)), name  # one tag per layer
        assert len(tags) == len(depth_ordered_layers(build_model(name, depth=2, width=4, **kw))), name
    extras = {name: sorted(set(_tags(name, **kw)) - set(base)) for name in MODEL_NAMES}
    assert extras["resnet"] and all(t.endswith(".shortcut") for t in extras["resnet"])
    assert all(t.endswith((".carry", ".gate")) for t in extras["highway"]) and extras["highway"]
    assert all(t.endswith(".transition") for t in extras["densenet"]) and extras["densenet"]
    for name in ("unet_concat", "unet_add", "unet_crop", "plain", "autoencoder"):
        assert extras[name] == [], name


def test_merge_projection_is_an_extra_of_its_decoder_level():
    from skipbench.models.encdec import DecoderLevel

    model = build_model("unet_add", depth=1, width=4)
    model.dec0 = DecoderLevel(model.dec0.stage[0].__class__, 8, 6, 4, 1, "add")  # skip 6 ch != up 4 ch
    tags = [n for n, _ in skeleton_layers(model)[0]]
    assert "02_dec0/conv0.skip_proj" in tags and "02_dec0/conv0_up" in tags and "02_dec0/conv1" in tags


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tags_sort_by_depth(name):
    """Sorted tags = levels in forward order, main-path convs of a level in forward order."""
    model = build_model(name, depth=2, width=4, blocks_per_level=2)
    named, _ = skeleton_layers(model)
    tags = [n for n, _ in named]
    assert tags == sorted(tags)
    forward = {id(m): i for i, (_, m) in enumerate(depth_ordered_layers(model))}
    main = [forward[id(m)] for n, m in named if "." not in n.split("/")[1]]
    assert main == sorted(main)  # the order of the forward pass (registration = call order, test_models)
    levels = [t.split("/")[0] for t in tags]
    assert [lvl.split("_", 1)[1] for lvl in dict.fromkeys(levels)] == ["enc0", "enc1", "bottleneck", "dec1", "dec0", "head"]


@pytest.mark.parametrize("name", ["resnet", "highway", "fc_densenet"])
def test_level_grad_norms_equal_direct_computation(name):
    torch.manual_seed(0)
    model = build_model(name, depth=2, width=4)
    (model(torch.rand(2, 1, 16, 16)) * torch.randn(2, 1, 16, 16)).sum().backward()
    gn = GradNorms(model)
    values = dict(zip(gn.tags, gn().tolist()))
    for level in ("enc0", "enc1", "bottleneck", "dec1", "dec0", "head"):
        grads = [p.grad.flatten() for p in getattr(model, level).parameters()]
        direct = math.log10(torch.cat(grads).norm().item())
        (tag,) = [t for t in gn.tags if t.startswith("grad_level/") and t.endswith(f"_{level}")]
        assert values[tag] == pytest.approx(direct, abs=1e-5), tag
    assert [t for t in gn.tags if t.startswith("grad_level/")] == [
        "grad_level/00_enc0", "grad_level/01_enc1", "grad_level/02_bottleneck", "grad_level/03_dec1",
        "grad_level/04_dec0", "grad_level/05_head"]


def test_level_grad_norm_of_zero_gradient_is_the_floor_not_minus_inf():
    model = build_model("autoencoder", depth=1, width=4)
    gn = GradNorms(model)
    values = gn()  # no backward: every gradient counts as zero
    levels = values[-len(gn.level_names):]
    assert torch.all(levels == math.log10(1e-20))


def test_one_host_transfer_per_log_step(monkeypatch):
    """All layer norms, the total and the level norms come back in one tensor, fetched once."""
    model = build_model("resnet", depth=2, width=4)
    diag = Diagnostics(model, diag_cfg())
    model(torch.rand(2, 1, 16, 16)).sum().backward()
    diag.after_backward(True)
    calls = []
    real = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: calls.append(self.shape) or real(self, *a, **k))
    values = diag.scalars(1)
    assert len(calls) == 1
    assert sum(k.startswith("grad_level/") for k in values) == 6


def test_heatmap_uses_the_fixed_colour_range():
    from skipbench.figures import grad_flow_heatmap
    from skipbench.figures import GRAD_LOG10_RANGE

    fig = grad_flow_heatmap(["a", "b"], [1, 2], [[1e-9, 1e3], [1e-2, 1e-3]])
    image = fig.axes[0].images[0]
    assert image.get_clim() == GRAD_LOG10_RANGE  # not the data's own range (-9 .. 3)
    assert "fixed range" in fig.axes[1].get_ylabel()
    cmap = image.get_cmap()
    assert cmap(-1.0)[:3] != cmap(0.0)[:3] and cmap(2.0)[:3] != cmap(1.0)[:3]  # clipped values show
