"""One interface for every data set: in-memory splits and a deterministic batch sampler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .. import seeds
from ..errors import ConfigError, DataError


@dataclass
class Split:
    """One split held as tensors.

    images: ``[N, C, H, W]`` float in [0, 1]; masks: ``[N, H, W]`` long class ids (or None);
    labels: ``[N]`` long image classes (or None).
    """

    images: torch.Tensor
    masks: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> "Split":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Split(move(self.images), move(self.masks), move(self.labels))

    def take(self, index: torch.Tensor) -> "Split":
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Split(pick(self.images), pick(self.masks), pick(self.labels))


@dataclass
class ImageData:
    """A data set: train/val splits plus what tasks need to know about it."""

    name: str
    train: Split
    val: Split
    channels: int
    seg_classes: list[str] = field(default_factory=list)  # per-pixel classes (index = mask value)
    classes: list[str] = field(default_factory=list)  # per-image classes (index = label)
    mean: list[float] | None = None  # per-channel normalisation statistics of the training split
    std: list[float] | None = None

    def __post_init__(self) -> None:
        from ..limits import check_classes

        check_classes(self.name, len(self.seg_classes), "its masks")  # any reader: before a confusion matrix
        check_classes(self.name, len(self.classes), "its labels")
        if self.mean is None or self.std is None:
            from .stats import channel_stats

            self.mean, self.std = channel_stats(self.train.images)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.images.shape[-2:])  # type: ignore[return-value]


class EpochSampler:
    """Batch indices as a pure function of ``(seed, step)``: shuffled epochs, no repeats within one.

    Being a function of the step (not of hidden iterator state) is what makes resume exact: a run
    restarted at step ``s`` sees the same batches as one that never stopped.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device | str | None = None) -> None:
        if batch_size > n:
            raise ConfigError(f"trainer.batch_size={batch_size}: larger than the training split ({n} images); "
                              "lower it or use more training images")
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.per_epoch = n // batch_size  # drop the ragged tail: every batch has the same size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = seeds.generator(self.seed, "shuffle", epoch)
            # Drawn on the CPU (the same batches on every device), kept on the data's device: indexing CUDA
            # data with a CPU index would copy it from pageable memory, a host sync, every step.
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g).to(self.device)
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]


# ---------------------------------------------------------------- argument checks the loaders share
def check_positive(what: str, name: str, value: Any, note: str = "") -> None:
    """``value`` must be an integer >= 1 (a bool is not); ``note`` says what else is allowed."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{what}: {name}={value!r} must be a positive integer{note}")


def check_fraction(what: str, name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise DataError(f"{what}: {name}={value!r} must be between 0 and 1 (exclusive)")


def check_channels(what: str, channels: int) -> None:
    if channels not in (1, 3):
        raise DataError(f"{what}: channels={channels!r} must be 1 (grey) or 3 (RGB)")
