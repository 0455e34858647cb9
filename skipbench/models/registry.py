"""Model names -> which skips they use. The one place a variant name is defined in code.

``configs/model/<name>.yaml`` must exist for every name here and state the same ``long_skip`` and
``block`` (``tests/test_registry.py`` checks both directions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UnknownModelError
from .encdec import EncoderDecoder


@dataclass(frozen=True)
class Variant:
    long_skip: str  # encoder -> decoder merge: none | concat | add | crop_concat
    block: str  # short skip inside each block: plain | residual | dense | highway
    summary: str
    padding: int = 1  # 1 = padded convs; 0 = valid convs (original U-Net)


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
}


def list_models() -> list[str]:
    return sorted(MODELS)


def get_variant(name: str) -> Variant:
    if name not in MODELS:
        raise UnknownModelError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return MODELS[name]


def build_model(
    name: str, long_skip: str | None = None, block: str | None = None, padding: int | None = None, **kwargs: Any
) -> EncoderDecoder:
    """Build a registered variant; ``long_skip``/``block``/``padding`` default to the registered ones.

    ``kwargs`` go to :class:`EncoderDecoder` (``in_channels``, ``out_channels``, ``depth``, ...).
    """
    variant = get_variant(name)
    return EncoderDecoder(
        long_skip=str(long_skip or variant.long_skip),
        block=str(block or variant.block),
        padding=variant.padding if padding is None else padding,
        **kwargs,
    )
