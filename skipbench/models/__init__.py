"""Pure ``nn.Module`` s: the skeleton, its blocks (short skips) and merges (long skips)."""

from .blocks import BLOCKS
from .encdec import EncoderDecoder
from .merges import MERGES
from .registry import MODELS, UnknownModelError, build_model, get_variant, list_models

__all__ = [
    "BLOCKS", "MERGES", "MODELS", "EncoderDecoder", "UnknownModelError", "build_model", "get_variant", "list_models",
]
