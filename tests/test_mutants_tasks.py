"""Tasks and metrics: behaviour the mutation run (mutmut) showed no test pinned down.

Every expected value is derived here by hand, from a textbook formula written independently of
``skipbench.tasks`` (a brute-force SSIM over windows, ``colorsys`` for the HSV palette), or from a
property of the definition (SSIM is invariant to the data range when the images scale with it).
"""

from __future__ import annotations

import colorsys
import math

import pytest
import torch

from skipbench.config import ConfigError
from skipbench.data import ImageData, Split
from skipbench.tasks import Classify, Denoise, Reconstruct, Segment, Task, iou_dice, palette, psnr, ssim, supported_tasks


def data(channels: int = 1, masks: bool = True, labels: bool = True, mean=None, std=None) -> ImageData:
    """A tiny data set with known normalisation statistics."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, channels, 6, 6, generator=g)
    split = Split(images, masks=torch.zeros(4, 6, 6, dtype=torch.long) if masks else None,
                  labels=torch.zeros(4, dtype=torch.long) if labels else None)
    return ImageData(name="tiny", train=split, val=split, channels=channels, seg_classes=["bg", "a", "b"],
                     classes=["x", "y"], mean=mean or [0.5] * channels, std=std or [0.25] * channels)


# ---------------------------------------------------------------- PSNR / SSIM with another data range
def test_psnr_with_data_range_255_by_hand():
    target = torch.tensor([[[[250.0, 100.0]]]])
    output = torch.tensor([[[[262.0, 104.0]]]])
    # clamped to [0, 255]: errors 5, 4 -> MSE 20.5; unclamped: 12, 4 -> MSE 80
    torch.testing.assert_close(psnr(output, target, data_range=255.0),
                               torch.tensor([10 * math.log10(255**2 / 20.5)]))
    torch.testing.assert_close(psnr(output, target, data_range=255.0, clamp=False),
                               torch.tensor([10 * math.log10(255**2 / 80)]))


def test_ssim_is_invariant_to_the_data_range():
    # C1 = (K1 L)^2 and C2 = (K2 L)^2 scale with L^2 like every mean and variance term: images scaled
    # by L score as the [0, 1] images with data_range 1.
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 1, 14, 13, generator=g)
    y = (x + 0.2 * torch.randn(2, 1, 14, 13, generator=g)).clamp(0, 1)
    torch.testing.assert_close(ssim(255 * y, 255 * x, data_range=255.0), ssim(y, x))
    # the output is clamped to the data range, like PSNR's
    torch.testing.assert_close(ssim(255 * y + 1000 * (y > 0.9), 255 * x, data_range=255.0),
                               ssim(y + 10 * (y > 0.9), x))


def brute_force_ssim(x: torch.Tensor, y: torch.Tensor, window: int, sigma: float, data_range: float = 1.0) -> float:
    """Wang et al. (2004) by the definition: a loop over every window position that fits the image, each
    window's Gaussian-weighted means, variances and covariance, averaged over positions and channels."""
    x, y = x.double(), y.double()
    _, c, h, w = x.shape
    win = min(window, h, w)
    r = torch.arange(win, dtype=torch.float64) - (win - 1) / 2
    g1 = torch.exp(-r**2 / (2 * sigma**2))
    weights = g1[:, None] * g1[None, :]
    weights = weights / weights.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for ch in range(c):
        for i in range(h - win + 1):
            for j in range(w - win + 1):
                a, b = x[0, ch, i:i + win, j:j + win], y[0, ch, i:i + win, j:j + win]
                ma, mb = (weights * a).sum(), (weights * b).sum()
                va, vb = (weights * (a - ma) ** 2).sum(), (weights * (b - mb) ** 2).sum()
                cov = (weights * (a - ma) * (b - mb)).sum()
                values.append(((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))).item())
    return sum(values) / len(values)


@pytest.mark.parametrize("c,h,w,window,sigma", [(3, 9, 13, 11, 1.5), (2, 12, 10, 5, 0.8), (1, 14, 16, 11, 1.5)])
def test_ssim_against_the_definition_window_by_window(c, h, w, window, sigma):
    # non-square, several channels, a window cropped to a small image, and non-default window / sigma
    g = torch.Generator().manual_seed(c * 100 + h)
    x = torch.rand(1, c, h, w, generator=g)
    y = (x + 0.15 * torch.randn(1, c, h, w, generator=g)).clamp(0, 1)
    expected = brute_force_ssim(y, x, window, sigma)
    assert ssim(y, x, window=window, sigma=sigma).item() == pytest.approx(expected, abs=1e-5)


# ---------------------------------------------------------------- IoU / Dice
def test_iou_and_dice_of_a_one_pixel_class_are_one():
    # class 0: a single pixel, predicted right (TP 1, union 1); class 1: three pixels, all right
    iou, dice, present = iou_dice(torch.tensor([[1, 0], [0, 3]]))
    assert iou.tolist() == [1.0, 1.0] and dice.tolist() == [1.0, 1.0] and present.tolist() == [True, True]


def test_iou_dice_only_predicted_class_is_present_with_zero_score():
    # class 1 never occurs in the truth but is predicted once: IoU 0 and Dice 0, yet it counts
    iou, dice, present = iou_dice(torch.tensor([[3, 1], [0, 0]]))
    assert present.tolist() == [True, True]
    torch.testing.assert_close(iou, torch.tensor([3 / 4, 0.0], dtype=torch.float64))
    torch.testing.assert_close(dice, torch.tensor([6 / 7, 0.0], dtype=torch.float64))


def test_per_image_scores_by_hand():
    # image 0: all background, predicted right: IoU = Dice = 1 over the one class present
    # image 1: truth [0, 0, 1, 1], predicted [0, 1, 1, 1]: class 0 IoU 1/2, Dice 2/3; class 1 IoU 2/3, Dice 4/5
    # image 2: truth [0, 0, 0, 2], predicted the same: class 2 is one pixel (union 1), IoU = Dice = 1
    task = Segment()
    task.classes = ["bg", "a", "b"]
    truth = torch.tensor([[[0, 0], [0, 0]], [[0, 0], [1, 1]], [[0, 0], [0, 2]]])
    pred = torch.tensor([[[0, 0], [0, 0]], [[0, 1], [1, 1]], [[0, 0], [0, 2]]])
    m = task.metrics(None, torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float(), truth)
    torch.testing.assert_close(m["miou_per_image"], torch.tensor([1.0, (1 / 2 + 2 / 3) / 2, 1.0]))
    torch.testing.assert_close(m["dice_per_image"], torch.tensor([1.0, (2 / 3 + 4 / 5) / 2, 1.0]))
    torch.testing.assert_close(m["pixel_acc"], torch.tensor([1.0, 3 / 4, 1.0]))


def test_segment_split_metrics_over_two_batches_add_up():
    task = Segment()
    task.classes, task._confusion = ["bg", "a"], None
    onehot = lambda p: torch.nn.functional.one_hot(p, 2).permute(0, 3, 1, 2).float()  # noqa: E731
    task.observe(onehot(torch.tensor([[[1, 1]]])), torch.tensor([[[1, 1]]]))  # class 1: TP 2
    task.observe(onehot(torch.tensor([[[0, 1]]])), torch.tensor([[[0, 0]]]))  # class 0: TP 1, FN 1; class 1 FP 1
    # summed: [[1, 1], [0, 2]] -> IoU 1/2, 2/3; Dice 2/3, 4/5
    m = task.split_metrics()
    assert m["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2) and m["dice"] == pytest.approx((2 / 3 + 4 / 5) / 2)


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
