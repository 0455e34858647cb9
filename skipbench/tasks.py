"""Tasks turn a batch of a data split into ``(input, target)`` and say how to score the output.

A task is built by Hydra from ``configs/task/<name>.yaml`` and used by the loop only through
:class:`Task`'s methods, so adding a task never touches the loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import Split
from .models.blocks import crop_to


def psnr(output: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, ``[B, C, H, W] x2 -> [B]``; the output is clamped to the data range."""
    mse = (output.clamp(0, data_range) - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-10))


class Task:
    """Base class. ``metric`` names the headline validation metric (higher is better)."""

    name = "task"
    metric = "psnr"
    head = "pixels"  # what the model must output: "pixels" or "classes"

    def out_channels(self, in_channels: int) -> int:
        return in_channels

    def make_batch(self, split: Split, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output.float(), crop_to(target, output))

    def metrics(self, inputs: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample values ``[B]`` for each metric; the loop averages them over the split."""
        return {"psnr": psnr(output.float(), crop_to(target, output))}

    def sample_rows(self, inputs: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
        """Rows of ``[N, C, H, W]`` images in [0, 1] for the TensorBoard grid: input, output, target.

        Models with valid convs (``unet_crop``) output a centre region of the input; targets and
        inputs are centre-cropped to it here and in every loss and metric.
        """
        return [crop_to(inputs, output).clamp(0, 1), output.float().clamp(0, 1), crop_to(target, output)]


class Reconstruct(Task):
    """Identity target: the autoencoder experiment. Everything must pass the bottleneck unless skipped."""

    name = "reconstruct"

    def make_batch(self, split, generator):
        return split.images, split.images


class Denoise(Task):
    """Input = image + N(0, sigma^2) noise (not clipped), target = the clean image."""

    name = "denoise"

    def __init__(self, sigma: float = 0.2) -> None:
        self.sigma = sigma

    def make_batch(self, split, generator):
        clean = split.images
        noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
        return clean + self.sigma * noise, clean

    def metrics(self, inputs, output, target):
        # The noisy input's PSNR is the baseline a denoiser must beat.
        return {**super().metrics(inputs, output, target), "input_psnr": psnr(crop_to(inputs, output), crop_to(target, output))}
