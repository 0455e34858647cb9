"""Tasks: batches, losses, PSNR, setup, the pictures and legends, which data serves which task."""

from __future__ import annotations

import colorsys
import math

import pytest
import torch

from skipbench.config import ConfigError
from skipbench.data import ImageData, Split, shapes
from skipbench.tasks import Classify, Denoise, Reconstruct, Segment, Task, palette, psnr, supported_tasks


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


# ================================================================== found by mutation testing (round 2)
# Written from mutmut's survivors in issue 15m (docs/testing.md), from tests/test_mutants_tasks.py (its
# PSNR, SSIM, IoU and Dice tests are in test_metrics.py): every expected value is derived by hand, from
# a formula written independently of ``skipbench.tasks`` (``colorsys`` for the HSV palette), or from a
# property of the definition.
def data(channels: int = 1, masks: bool = True, labels: bool = True, mean=None, std=None) -> ImageData:
    """A tiny data set with known normalisation statistics."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, channels, 6, 6, generator=g)
    split = Split(images, masks=torch.zeros(4, 6, 6, dtype=torch.long) if masks else None,
                  labels=torch.zeros(4, dtype=torch.long) if labels else None)
    return ImageData(name="tiny", train=split, val=split, channels=channels, seg_classes=["bg", "a", "b"],
                     classes=["x", "y"], mean=mean or [0.5] * channels, std=std or [0.25] * channels)


# ---------------------------------------------------------------- Segment after setup: its split metrics
def test_segment_after_setup_scores_a_split_with_one_class():
    task = Segment()
    task.setup(data())
    logits = torch.nn.functional.one_hot(torch.zeros(2, 3, 3, dtype=torch.long), 3).permute(0, 3, 1, 2).float()
    task.observe(logits, torch.zeros(2, 3, 3, dtype=torch.long))  # all background, all right
    assert task.split_metrics() == {"miou": 1.0, "dice": 1.0}  # one class present: its IoU, not half of it


# ---------------------------------------------------------------- palette, legend, pictures
@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_palette_is_evenly_spaced_hues_with_black_background(n):
    colours = palette(n)
    assert colours.shape == (n, 3)
    assert colours[0].tolist() == [0.0, 0.0, 0.0]
    for i in range(1, n):
        expected = colorsys.hsv_to_rgb(i / max(1, n - 1) % 1.0, 1.0, 1.0)
        torch.testing.assert_close(colours[i], torch.tensor(expected, dtype=torch.float32), rtol=0, atol=1e-6)


def test_segment_legend_names_each_class_with_its_colour():
    task = Segment()
    task.setup(data())
    assert task.legend() == [("bg", (0.0, 0.0, 0.0)), ("a", (0.0, 1.0, 1.0)), ("b", (1.0, 0.0, 0.0))]


def test_segment_sample_rows_show_the_image_and_both_masks_in_class_colours():
    task = Segment()
    task.setup(data(mean=[0.5], std=[0.25]))
    image = torch.tensor([[[[0.0, 0.25], [0.75, 1.0]]], [[[0.5, 0.5], [0.5, 0.5]]]])
    truth = torch.tensor([[[0, 1], [2, 2]], [[0, 0], [0, 0]]])
    logits = torch.nn.functional.one_hot(torch.tensor([[[1, 1], [2, 0]], [[0, 0], [0, 0]]]), 3).permute(0, 3, 1, 2).float()
    rows = task.sample_rows(task.prepare(image), logits, truth)
    assert [caption for caption, _ in rows] == ["input", "predicted", "true mask"]
    torch.testing.assert_close(rows[0][1], image.expand(2, 3, 2, 2))  # unnormalised, grey as RGB
    black, cyan, red = [0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]
    assert rows[1][1][0].permute(1, 2, 0).tolist() == [[cyan, cyan], [red, black]]
    assert rows[2][1][0].permute(1, 2, 0).tolist() == [[black, cyan], [red, red]]


def test_pixel_sample_rows_are_clamped_and_cropped_to_the_output():
    task = Denoise()
    inputs = torch.tensor([[[[-1.0, 0.5, 2.0], [0.2, 1.5, 0.3], [0.0, 0.0, 0.0]]]])
    target = torch.tensor([[[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]]])
    output = torch.tensor([[[[1.7]]]])  # a 1x1 output (valid convs): the centre pixel
    rows = task.sample_rows(inputs, output, target)
    assert [caption for caption, _ in rows] == ["noisy input", "output", "target"]
    assert [r.flatten().tolist() for _, r in rows] == [[1.0], [1.0], [0.5]]
    assert task.sample_rows(inputs, -output, target)[1][1].flatten().tolist() == [0.0]  # both ends clamped
    caption, shown = Reconstruct().sample_rows(inputs[..., :1, :1], output, target[..., :1, :1])[0]
    assert caption == "input" and shown.tolist() == [[[[0.0]]]]  # -1 clamped
    assert task.sample_labels(output, target) is None and task.legend() is None and task.figures() == {}


def test_classify_sample_rows_frame_right_green_and_wrong_red():
    task = Classify()
    task.setup(data(mean=[0.5], std=[0.25]))
    image = torch.full((2, 1, 4, 5), 0.75)  # non-square: height and width must not be swapped
    logits = torch.tensor([[0.0, 1.0], [3.0, 0.0]])  # predicted y, x
    target = torch.tensor([1, 1])  # the first is right, the second wrong
    (caption, framed), = task.sample_rows(task.prepare(image), logits, target)
    assert caption == "input" and framed.shape == (2, 3, 8, 9)  # a 2-pixel frame around 4x5
    torch.testing.assert_close(framed[:, :, 2:-2, 2:-2], torch.full((2, 3, 4, 5), 0.75))
    frame = torch.ones(8, 9, dtype=torch.bool)
    frame[2:-2, 2:-2] = False
    for i, rgb in enumerate(([0.0, 1.0, 0.0], [1.0, 0.0, 0.0])):
        assert framed[i].permute(1, 2, 0)[frame].unique(dim=0).tolist() == [rgb]
    assert task.sample_labels(logits, target) == ["pred y\ntrue y", "pred x\ntrue y"]


def test_classify_confusion_figure_once_per_eval():
    task = Classify()
    task.setup(data())
    assert task.figures() == {}  # nothing observed yet
    task.observe(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    task.observe(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 1, 1]))  # a second batch adds
    figs = task.figures()
    assert list(figs) == ["confusion/val"]
    ax = figs["confusion/val"].axes[0]
    assert [t.get_text() for t in ax.texts] == ["2", "1", "0", "2"]  # truth x: twice x, once y; truth y: twice y
    assert task.figures() == {}  # reset after the eval
    import matplotlib.pyplot as plt

    plt.close(figs["confusion/val"])


# ---------------------------------------------------------------- setup, normalisation, losses
def test_setup_reads_channels_statistics_and_classes():
    seg, cls, rec = Segment(), Classify(), Reconstruct()
    for task in (seg, cls, rec):
        task.setup(data(channels=3, mean=[0.2, 0.4, 0.6], std=[0.1, 0.2, 0.0]))
    assert (seg.out_channels, cls.out_channels, rec.out_channels) == (3, 2, 3)  # classes, labels, channels
    assert seg.classes == ["bg", "a", "b"] and cls.classes == ["x", "y"]
    x = torch.tensor([0.3, 0.8, 0.6]).view(1, 3, 1, 1)
    # (x - mean) / std per channel; a channel with std 0 is divided by a tiny floor, not by 0
    z = seg.prepare(x)
    torch.testing.assert_close(z[0, :2, 0, 0], torch.tensor([1.0, 2.0]))
    assert z[0, 2, 0, 0].item() == 0.0
    assert seg.prepare(x + 0.01)[0, 2].abs().item() > 1e3
    assert rec.prepare(x) is x and rec.unprepare(x) is x  # pixel tasks see [0, 1] images
    # unprepare is clamped to [0, 1] for pictures
    torch.testing.assert_close(seg.unprepare(torch.tensor([-100.0, 100.0, 0.0]).view(1, 3, 1, 1)).flatten(),
                               torch.tensor([0.0, 1.0, 0.6]))


def test_segment_and_classify_batches_are_normalised_images_and_their_targets():
    d = data(mean=[0.5], std=[0.25])
    seg, cls = Segment(), Classify()
    seg.setup(d)
    cls.setup(d)
    for task, target in ((seg, d.train.masks), (cls, d.train.labels)):
        inputs, t = task.make_batch(d.train, None)
        torch.testing.assert_close(inputs, (d.train.images - 0.5) / 0.25)
        assert t is target


def test_loss_names_and_cross_entropy_losses():
    assert (Segment().loss_name, Segment(dice_weight=0.5).loss_name, Classify().loss_name, Denoise().loss_name) == (
        "ce", "ce_dice", "ce", "mse")
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
    assert Classify().loss(logits, torch.tensor([1])).item() == pytest.approx(-math.log(3 / 4))
    # the Dice term is weighted: half the weight, half the extra loss
    truth = torch.tensor([[[0, 1], [1, 1]]])
    logits = torch.nn.functional.one_hot(torch.tensor([[[0, 0], [1, 1]]]), 2).permute(0, 3, 1, 2).float() * 10
    full, half, none = (Segment(dice_weight=w).loss(logits, truth).item() for w in (1.0, 0.5, 0.0))
    assert half - none == pytest.approx((full - none) / 2, rel=1e-5)


def test_soft_dice_loss_by_hand():
    # 3 classes, a 1x2 image; softmax probabilities [1/4, 1/2, 1/4] and [1/2, 1/4, 1/4]; truth [1, 0]
    # class 0: inter 1/2, |p| + |t| = 3/4 + 1 -> (2 * 1/2 + 1) / (7/4 + 1) = 8/11; class 1 likewise 8/11;
    # class 2 (absent): inter 0, |p| = 1/2 -> 1 / (3/2) = 2/3. Dice term 1 - (8/11 + 8/11 + 2/3) / 3 = 29/99;
    # cross-entropy: both pixels have probability 1/2 on the truth -> ln 2.
    logits = torch.log(torch.tensor([[[[1.0, 2.0]], [[2.0, 1.0]], [[1.0, 1.0]]]]))
    truth = torch.tensor([[[1, 0]]])
    assert Segment(dice_weight=1.0).loss(logits, truth).item() == pytest.approx(math.log(2) + 29 / 99, rel=1e-6)
    assert Segment(dice_weight=0.5).loss(logits, truth).item() == pytest.approx(math.log(2) + 29 / 198, rel=1e-6)


def test_losses_crop_the_target_to_a_smaller_output():
    target = torch.arange(9.0).view(1, 1, 3, 3) / 10
    output = torch.tensor([[[[0.4]]]])  # centre pixel 0.4: no error
    assert Reconstruct().loss(output, target).item() == pytest.approx(0.0, abs=1e-12)
    mask = torch.tensor([[[1, 1, 1], [1, 0, 1], [1, 1, 1]]])
    logits = torch.tensor([[[[5.0]], [[0.0]]]])  # predicts class 0 at the centre, which is right
    assert Segment().loss(logits, mask).item() == pytest.approx(math.log(1 + math.exp(-5.0)), rel=1e-5)


def test_base_task_cannot_make_batches():
    with pytest.raises(NotImplementedError):
        Task().make_batch(Split(torch.zeros(1, 1, 2, 2)), None)
    assert Task().split_metrics() == {} and Task().observe(None, None) is None


def test_salt_and_pepper_amount_sets_both_halves():
    clean = torch.full((1, 1, 100, 100), 0.5)
    noisy, target = Denoise(noise="salt_pepper", amount=0.5).make_batch(Split(clean), torch.Generator().manual_seed(1))
    assert target is clean
    # 10,000 pixels: a quarter salt, a quarter pepper (standard error ~0.004)
    assert (noisy == 0).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert (noisy == 1).float().mean().item() == pytest.approx(0.25, abs=0.02)


# ---------------------------------------------------------------- which data serves which task
def test_supported_tasks_follow_masks_and_labels():
    assert supported_tasks(data()) == ["reconstruct", "denoise", "segment", "classify"]
    assert supported_tasks(data(masks=False)) == ["reconstruct", "denoise", "classify"]
    assert supported_tasks(data(labels=False)) == ["reconstruct", "denoise", "segment"]
    no_names = data()
    no_names.seg_classes, no_names.classes = [], []
    assert supported_tasks(no_names) == ["reconstruct", "denoise"]
    with pytest.raises(ConfigError, match="task=segment: dataset=tiny has no per-pixel masks"):
        Segment().setup(data(masks=False))
    with pytest.raises(ConfigError, match="task=classify: dataset=tiny has no image labels"):
        Classify().setup(data(labels=False))
