"""Pure ``nn.Module`` s: the skeleton, its blocks (short skips) and merges (long skips).

Names load on first use, so reading the variant table (:mod:`.registry`) imports no torch.
"""

from importlib import import_module
from typing import Any

_HOME = {
    "BLOCKS": "blocks", "MERGES": "merges", "EncoderDecoder": "encdec", "MODELS": "registry",
    "UnknownModelError": "registry", "build_model": "registry", "get_variant": "registry", "list_models": "registry",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOME[name]}", __name__), name)
