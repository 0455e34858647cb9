"""The fully connected skeleton: the same blocks, made of linear layers, on flattened images.

Shapes (``w = width``, ``n = num_layers``)::

    x [B, C, H, W] -> area-average to input_size x input_size -> flatten   [B, C * input_size**2]
    stem: linear, stem_act: norm -> ReLU                                      [B, w]
    body: n / 2 blocks (each two linear layers deep, like a conv block)       [B, w]
    post: norm -> ReLU for pre-activation blocks (else nothing)
    head: linear                                                              [B, num_classes]

The blocks are :data:`~skipbench.models.blocks.BLOCKS`' own, built with ``Layers(kind="linear")``
(``plain`` is a deep plain MLP, ``highway`` Srivastava et al.'s highway layers with a two-layer
transform, ``residual`` / ``preact_residual`` residual MLPs, ``dense`` one dense block of ``n``
layers), with every block knob of the conv skeleton (norm, residual scale, shortcut, stochastic depth).
It classifies only (``head="classes"``). Children are registered in forward order (``stem``, ``body``,
``head``) so the diagnostics name its layers by depth (``01_body/conv007``) as for the conv skeleton.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .blocks import BlockOptions, Layers, Stage, block_class, check_options, final_activation, place_blocks
from .encdec import init_skeleton


class MLP(nn.Module):
    """Deep fully connected classifier with a swappable block (see the module docstring).

    Args:
        in_channels: image channels; out_channels: classes.
        num_layers: hidden layers in the blocks (even: each block is two layers deep; ``>= 2``).
        width: units of every hidden layer.
        input_size: the side images are area-averaged to before flattening (MNIST 28 -> 28 keeps them).
        block, norm, ...: as for :class:`~skipbench.models.EncoderDecoder`; ``long_skip`` must be ``none``
            and ``padding`` 1 (there is no decoder and no conv).
    """

    def __init__(
        self, in_channels: int = 1, out_channels: int = 10, num_layers: int = 10, width: int = 32,
        block: str = "plain", head: str = "classes", input_size: int = 8, long_skip: str = "none", padding: int = 1,
        zero_init_residual: bool = False, highway_gate_bias: float = -2.0, dense_growth: int | None = None,
        norm: str = "batch", norm_groups: int = 8, residual_scale: str = "none", shortcut: str = "identity",
        shortcut_scale: float = 0.5, shortcut_gate_bias: float = -6.0, shortcut_dropout: float = 0.5,
        drop_path: float = 0.0, seed: int = 0,
    ) -> None:
        super().__init__()
        for ok, key, value, rule in [
            (num_layers >= 2 and num_layers % 2 == 0, "num_layers", num_layers, "must be an even integer >= 2 (each block is two layers deep)"),
            (width >= 1, "width", width, "must be an integer >= 1"),
            (input_size >= 1, "input_size", input_size, "must be an integer >= 1"),
            (head == "classes", "head", head, "the fully connected skeleton (model=mlp_*) only classifies: use task=classify"),
            (long_skip == "none", "long_skip", long_skip, "the fully connected skeleton has no decoder to skip to; use none"),
            (padding == 1, "padding", padding, "the fully connected skeleton has no convs; use 1"),
        ]:
            if not ok:
                raise ConfigError(f"{key}={value}: {rule}")
        layers = Layers("linear", 1, norm, norm_groups)
        options = BlockOptions(1, num_layers // 2, zero_init_residual, highway_gate_bias, dense_growth, layers,
                               residual_scale, shortcut, shortcut_scale, shortcut_gate_bias, shortcut_dropout, drop_path, seed)
        check_options(block, options)
        make_block, n_blocks = block_class(block).stage(options)
        self.input_size, self.residual_scale, self.head_kind = input_size, residual_scale, head
        self.stem = layers.point(in_channels * input_size**2, width)  # one layer: its level is named 00_stem/linear
        self.stem_act = nn.Sequential(layers.norm_layer(width), nn.ReLU(inplace=True))
        self.body = Stage(make_block, width, width, n_blocks)
        self.post = final_activation(block, layers, width)
        self.head = nn.Linear(width, out_channels)
        place_blocks(self.modules(), drop_path)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As the conv skeleton's (its linear layers are the weight layers)."""
        init_skeleton(self, self.head, self.residual_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, C, H, W]`` -> ``[B, num_classes]``."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.adaptive_avg_pool2d(x, self.input_size)
        return self.head(self.post(self.body(self.stem_act(self.stem(x.flatten(1))))))
