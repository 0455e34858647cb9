"""skipbench: measure what skip connections do to a network.

The Python API (:mod:`skipbench.api`) loads on first use, so ``import skipbench`` and the CLI stay light::

    import skipbench
    run = skipbench.train(["model=resnet", "trainer.max_steps=100"])
    table = skipbench.compare(models=["autoencoder", "unet_concat"], seeds=[0, 1])
"""

from typing import Any

__version__ = "0.1.0"

_API = ("RunResult", "compose", "train", "sweep", "compare", "report", "model_summary")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in ("train", "sweep", "report"):  # packages doing the work, callable as the API (api_modules.py)
        from importlib import import_module

        return import_module(f".{name}", __name__)
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'skipbench' has no attribute {name!r}")
