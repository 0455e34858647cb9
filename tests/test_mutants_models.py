"""The skeleton (``skipbench.models.encdec``) and the registry: behaviour the mutation run showed no
test pinned down. Expected values follow from the documented initialisation and shapes.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from skipbench.models import EncoderDecoder, build_model
from skipbench.models.blocks import HighwayBlock, ResidualBlock


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


@pytest.mark.parametrize("shape,ok", [((65, 66), False), ((66, 65), False), ((65, 68), True), ((68, 65), True)])
def test_valid_conv_size_check_covers_both_sides(shape, ok):
    model = build_model("unet_crop", width=1, depth=2)
    x = torch.zeros(1, 1, *shape)
    if ok:
        # valid_output_size by hand: 65 -> 61, 30 -> 26, 13 -> 9 -> 18 - 4 = 14 -> 28 - 4 = 24; 68 -> ... 28
        assert model(x).shape[-2:] == tuple({65: 24, 68: 28}[s] for s in shape)
    else:
        with pytest.raises(ValueError, match="66 px"):
            model(x)
