"""Tasks: batches, loss, PSNR."""

from __future__ import annotations

import math

import pytest
import torch

from skipbench.data import Split, shapes
from skipbench.tasks import Denoise, Reconstruct, psnr


def test_psnr_identical_images_is_clamped_high():
    x = torch.rand(3, 1, 8, 8)
    value = psnr(x, x)
    assert value.shape == (3,)
    # mse is clamped at 1e-10: 10 * log10(1 / 1e-10) dB, finite
    torch.testing.assert_close(value, torch.full((3,), 10 * math.log10(1 / 1e-10)))


@pytest.mark.parametrize("e", [0.01, 0.1, 0.25])
def test_psnr_of_constant_error(e):
    target = 0.25 + 0.5 * torch.rand(2, 3, 6, 6)  # in [0.25, 0.75]: target +- e stays in [0, 1]
    expected = torch.full((2,), 10 * math.log10(1 / e**2))
    torch.testing.assert_close(psnr(target + e, target), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(psnr(target - e, target), expected, rtol=1e-4, atol=1e-4)


def test_psnr_clamps_output_to_data_range():
    target = torch.ones(1, 1, 4, 4)
    # an output above the range is clamped to 1: a perfect score, not a penalty
    torch.testing.assert_close(psnr(target + 5, target), psnr(target, target))


def test_psnr_per_image():
    target = torch.full((2, 1, 4, 4), 0.5)
    out = target.clone()
    out[0] += 0.1
    out[1] += 0.2
    v = psnr(out, target)
    torch.testing.assert_close(v, torch.tensor([20.0, 10 * math.log10(1 / 0.04)]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sigma", [0.05, 0.2, 0.5])
def test_denoise_noise_std(sigma):
    clean = torch.rand(8, 1, 32, 32)
    g = torch.Generator().manual_seed(0)
    inputs, target = Denoise(sigma=sigma).make_batch(Split(clean), g)
    assert target is clean or torch.equal(target, clean)
    noise = inputs - clean
    assert abs(noise.std().item() - sigma) < 0.05 * sigma  # 8192 samples: std error ~0.8%
    assert abs(noise.mean().item()) < 0.05 * sigma


def test_denoise_noise_depends_only_on_generator():
    clean = torch.rand(4, 1, 8, 8)
    task = Denoise(0.2)
    a, _ = task.make_batch(Split(clean), torch.Generator().manual_seed(7))
    b, _ = task.make_batch(Split(clean), torch.Generator().manual_seed(7))
    c, _ = task.make_batch(Split(clean), torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_denoise_metrics_include_input_baseline():
    # Images in [0.3, 0.7] and small noise: nothing leaves [0, 1], so no clipping blurs the sums.
    clean = 0.3 + 0.4 * torch.rand(4, 1, 16, 16)
    task = Denoise(0.02)
    inputs, target = task.make_batch(Split(clean), torch.Generator().manual_seed(0))
    assert 0 <= inputs.min() and inputs.max() <= 1
    output = target + 0.5 * (inputs - target)  # a denoiser that removes half of the noise
    m = task.metrics(inputs, output, target)
    assert {"psnr", "input_psnr", "input_psnr_clipped", "ssim"} <= set(m)
    torch.testing.assert_close(m["input_psnr"], psnr(inputs, target, clamp=False))  # as the model receives it
    # half the noise amplitude = a quarter of the MSE = 20 log10(2) dB better than the input
    torch.testing.assert_close(m["psnr"] - m["input_psnr"], torch.full((4,), 20 * math.log10(2)), rtol=1e-4, atol=1e-4)
    perfect = task.metrics(inputs, target, target)["ssim"]
    torch.testing.assert_close(perfect, torch.ones(4))
    assert (m["ssim"] < 1).all() and (m["ssim"] > task.metrics(inputs, inputs, target)["ssim"]).all()


def test_denoise_input_psnr_scores_the_unclipped_input():
    clean = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    task = Denoise(0.1)
    inputs, target = task.make_batch(Split(clean), torch.Generator().manual_seed(0))
    outside = ((inputs < 0) | (inputs > 1)).flatten(1).any(1)
    assert outside.all(), "every image needs noisy pixels outside [0, 1] for the comparison below"
    m = task.metrics(inputs, target, target)
    torch.testing.assert_close(m["input_psnr"], psnr(inputs, target, clamp=False))  # as the model receives it
    torch.testing.assert_close(m["input_psnr_clipped"], psnr(inputs, target))
    assert (m["input_psnr_clipped"] > m["input_psnr"]).all()  # clipping removes some of the noise
    assert (m["psnr"] > m["input_psnr"]).all()


def test_reconstruct_is_identity():
    x = torch.rand(2, 3, 4, 4)
    inputs, target = Reconstruct().make_batch(Split(x), None)
    assert torch.equal(inputs, x) and torch.equal(target, x)


@pytest.mark.parametrize("channels", [1, 3])
def test_pixel_tasks_output_the_image_channels(channels):
    data = shapes(size=16, channels=channels, train_size=8, val_size=4)
    for task in (Reconstruct(), Denoise()):
        task.setup(data)
        assert task.out_channels == channels and task.head == "pixels"


def test_loss_is_mse():
    out, target = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(Denoise().loss(out, target), ((out - target) ** 2).mean())
