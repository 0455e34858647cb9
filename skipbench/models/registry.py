"""The model variants: the one place a variant is defined.

A variant is a name, its long skip (a name in :data:`~skipbench.models.merges.MERGES`), its block (a
name in :data:`~skipbench.models.blocks.BLOCKS`), its padding, its skeleton (``encdec``: the conv
encoder-decoder; ``mlp``: the fully connected one, :mod:`.mlp`; ``cifar``, ``densenet_bc``, ``rednet``: the
papers' own networks, :mod:`.papers`) and the block knobs it sets (``norm``,
``residual_scale``, ...: their defaults in its config). Hydra's ``model=<name>`` options are
made from this table (:func:`skipbench.config.register_configs` stores each as
``schema/model/<name>``), so ``configs/model/<name>.yaml`` only names it; ``model.long_skip``,
``model.block`` and ``model.padding`` start at the variant's values and stay user overrides.

Add a variant: one line in :data:`MODELS` and a two-line ``configs/model/<name>.yaml``::

    # <name>: defined in skipbench/models/registry.py
    defaults: [/schema/model/<name>@_here_]

This module imports no torch: the config schema reads the table before anything is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UnknownModelError

if TYPE_CHECKING:
    from torch import nn

    from .encdec import EncoderDecoder
    from .mlp import MLP


@dataclass(frozen=True)
class Variant:
    long_skip: str  # encoder -> decoder merge, a name in merges.MERGES
    block: str  # short skip inside each block, a name in blocks.BLOCKS
    summary: str
    padding: int = 1  # 1 = padded convs; 0 = valid convs (original U-Net)
    skeleton: str = "encdec"  # encdec (the conv encoder-decoder) or mlp (fully connected, classify only)
    knobs: tuple[tuple[str, Any], ...] = ()  # block knobs this variant sets (config defaults, still overridable)


MODELS: dict[str, Variant] = {
    "autoencoder": Variant("none", "plain", "plain encoder-decoder, no skips of any kind"),
    "unet_concat": Variant("concat", "plain", "U-Net: long skips concatenate encoder features"),
    "unet_add": Variant("add", "plain", "long skips add encoder features (1x1 projection if needed)"),
    "resnet": Variant("none", "residual", "short residual (add) skips in every block, no long skips"),
    "densenet": Variant("none", "dense", "short dense (concat) skips in every block, no long skips"),
    "highway": Variant("none", "highway", "short gated skips y = T*H(x) + (1-T)*x, no long skips"),
    "resunet": Variant("concat", "residual", "residual blocks + U-Net long concat skips"),
    "fc_densenet": Variant("concat", "dense", "dense blocks + U-Net long concat skips (Tiramisu)"),
    "unet_crop": Variant("crop_concat", "plain", "original U-Net: valid convs, encoder features cropped then concatenated", 0),
    "plain": Variant("none", "plain", "deep plain network, no skips of any kind (degradation experiments)"),
    "preact_resnet": Variant("none", "preact_residual", "full pre-activation residual blocks, identity path untouched (He 2016b)"),
    "resnet_nonorm": Variant("none", "residual", "residual blocks without normalisation, unscaled (the baseline that fails)",
                             knobs=(("norm", "none"),)),
    "rezero_resnet": Variant("none", "residual", "no normalisation, x + alpha F(x) with alpha = 0 at init (ReZero)",
                             knobs=(("norm", "none"), ("residual_scale", "rezero"))),
    "skipinit_resnet": Variant("none", "residual", "no normalisation, a scalar alpha = 0 ending each branch (SkipInit)",
                               knobs=(("norm", "none"), ("residual_scale", "skipinit"))),
    "fixup_resnet": Variant("none", "residual", "no normalisation, Fixup init, scalar biases and multiplier",
                            knobs=(("norm", "none"), ("residual_scale", "fixup"))),
    "mlp_plain": Variant("none", "plain", "fully connected: deep plain MLP on flattened images", skeleton="mlp"),
    "mlp_residual": Variant("none", "residual", "fully connected: residual MLP blocks", skeleton="mlp"),
    "mlp_highway": Variant("none", "highway", "fully connected: highway layers (Srivastava 2015)", skeleton="mlp"),
    "mlp_dense": Variant("none", "dense", "fully connected: one dense block over all layers", skeleton="mlp"),
    # The papers' own networks (skipbench/models/papers.py); their sizes are the papers'.
    "cifar_resnet": Variant("none", "residual", "He et al. 2016a CIFAR ResNet-(6n+2): 16/32/64 channels, option A shortcuts",
                            skeleton="cifar", knobs=(("shortcut", "zero_pad"),)),
    "cifar_plain": Variant("none", "plain", "He et al. 2016a's plain CIFAR net: ResNet-(6n+2) without shortcuts",
                           skeleton="cifar"),
    "unet2015": Variant("crop_concat", "plain", "Ronneberger et al. 2015 U-Net: valid convs, 64..1024 channels, 572 -> 388 px",
                        0, knobs=(("depth", 4), ("width", 64), ("norm", "none"))),
    "densenet_bc": Variant("none", "dense", "Huang et al. 2017 DenseNet-BC (L, k, compression): bottlenecks, transitions",
                           skeleton="densenet_bc"),
    "rednet": Variant("add", "plain", "Mao et al. 2016 RED-Net: convs + mirrored deconvs, symmetric add skips",
                      skeleton="rednet"),
}
SKELETONS = ("encdec", "mlp", "cifar", "densenet_bc", "rednet")


def list_models() -> list[str]:
    return sorted(MODELS)


def get_variant(name: str) -> Variant:
    if name not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return MODELS[name]


def build_model(
    name: str, long_skip: str | None = None, block: str | None = None, padding: int | None = None, **kwargs: Any
) -> nn.Module:
    """Build a registered variant; ``long_skip``/``block``/``padding`` and its knobs default to the registered ones.

    ``kwargs`` go to :class:`EncoderDecoder` (``in_channels``, ``out_channels``, ``depth``, ...) or, for
    the ``mlp`` skeleton, to :class:`~skipbench.models.mlp.MLP` (``num_layers``, ``width``, ...).
    """
    from .encdec import EncoderDecoder
    from .mlp import MLP
    from .papers import DenseNetBC, RedNet, cifar_net

    variant = get_variant(name)
    kwargs = {**dict(variant.knobs), **kwargs}
    skeleton = {"encdec": EncoderDecoder, "mlp": MLP, "cifar": cifar_net, "densenet_bc": DenseNetBC, "rednet": RedNet}
    return skeleton[variant.skeleton](
        long_skip=str(long_skip or variant.long_skip),
        block=str(block or variant.block),
        padding=variant.padding if padding is None else padding,
        **kwargs,
    )
