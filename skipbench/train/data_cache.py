"""The last data set loaded in this process, kept so nothing is loaded twice.

Checking a run and running it load the data set once, and so do the jobs of an in-process sweep that
share it (the shapes data take 0.4-0.6 s to draw; the loop never writes into a data set's tensors).
The key is the ``dataset`` config as a whole: a data set is a pure function of it (``dataset.seed``
included; the run seed plays no part), and a loader that draws from torch's global RNG draws from a
stream of its own (:func:`skipbench.seeds.seeded`) and leaves the global RNG as it was -- so a kept data
set is exactly what a fresh load would give, and loading seeds nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from .. import seeds
from ..config import instantiate_checked

if TYPE_CHECKING:
    from ..data import ImageData

_LOADED: dict[str, ImageData] = {}  # one data set at a time: a sweep over data sets must not hold them all


def load_data(cfg: DictConfig) -> ImageData:
    """The run's data set (``cfg.dataset``), loaded once per process while its config stays the same."""
    key = OmegaConf.to_yaml(cfg.dataset)
    if key not in _LOADED:
        _LOADED.clear()
        with seeds.seeded(int(cfg.dataset.get("seed", 0) or 0), "data", -1):
            _LOADED[key] = instantiate_checked(cfg.dataset)
    return _LOADED[key]


def forget_loaded() -> None:
    """Drop the kept data set (a refused run; the end of a command)."""
    _LOADED.clear()


def loaded() -> int:
    """How many data sets are kept (0 or 1)."""
    return len(_LOADED)
