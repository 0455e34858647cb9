"""Metrics against hand-computed values and against the reference libraries.

Reference numbers were computed ONCE with scikit-image 0.26.0, torchmetrics 1.9.0 and scikit-learn
1.9.1 (torch 2.13.0, CPU) in a throw-away virtual environment, on exactly the tensors built below,
and written here: none of them is a dependency of skipbench or of its tests. The script was:

    x, y = pair(c, h, w, seed)                                   # the helper below, float64
    skimage.metrics.structural_similarity(y[0].numpy(), x[0].numpy(), data_range=1.0, channel_axis=0,
                                          gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    skimage.metrics.peak_signal_noise_ratio(x[0].numpy(), y[0].numpy(), data_range=1.0)
    sklearn.metrics.jaccard_score(truth.ravel(), pred.ravel(), average="macro")   # and f1_score, confusion_matrix
    torchmetrics.classification.MulticlassJaccardIndex(num_classes=4, average="macro").update(pred, truth)

torchmetrics' SSIM (1.9.0) gives other numbers (0.88249 for the first pair): it averages the SSIM map
over the whole reflect-padded image, where scikit-image and Wang et al.'s code keep the valid region.
"""

from __future__ import annotations

import math

import pytest
import torch

from skipbench.data import Split, shapes
from skipbench.tasks import Classify, Denoise, Segment, confusion, iou_dice, psnr, ssim
from skipbench.train.loop import evaluate


def pair(c: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A clean image ``x`` and a noisy copy ``y`` in [0, 1], ``[1, c, h, w]`` float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h, w, generator=g, dtype=torch.float64)
    y = (x + 0.15 * torch.randn(1, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, y


# ---------------------------------------------------------------- PSNR
# (c, h, w, seed) -> (skimage SSIM, skimage PSNR); torchmetrics' PSNR agrees to 1e-6.
REFERENCE = {
    (1, 16, 16, 0): (0.8693331621369741, 17.24597437521949),
    (3, 24, 20, 1): (0.888945106318254, 17.193492181399147),
}


@pytest.mark.parametrize("shape", list(REFERENCE))
def test_psnr_matches_scikit_image(shape):
    x, y = pair(*shape)
    torch.testing.assert_close(psnr(y, x), torch.tensor([REFERENCE[shape][1]], dtype=torch.float64))


def test_psnr_by_hand_clamped_and_not():
    target = torch.full((1, 1, 2, 2), 0.9)
    noisy = torch.tensor([[[[1.3, 0.5], [0.9, 0.9]]]])
    # unclamped: errors 0.4, -0.4, 0, 0 -> MSE 0.08; clamped: 1.3 -> 1.0, errors 0.1, -0.4 -> MSE 0.0425
    torch.testing.assert_close(psnr(noisy, target, clamp=False), torch.tensor([10 * math.log10(1 / 0.08)]))
    torch.testing.assert_close(psnr(noisy, target), torch.tensor([10 * math.log10(1 / 0.0425)]))


def test_input_psnr_is_of_the_input_the_model_receives():
    target = torch.full((1, 1, 2, 2), 0.9)
    noisy = torch.tensor([[[[1.3, 0.5], [0.9, 0.9]]]])
    m = Denoise(0.2).metrics(noisy, target, target)
    torch.testing.assert_close(m["input_psnr"], torch.tensor([10 * math.log10(1 / 0.08)]))
    torch.testing.assert_close(m["input_psnr_clipped"], torch.tensor([10 * math.log10(1 / 0.0425)]))


def test_input_psnr_of_gaussian_noise_is_minus_ten_log_sigma_squared():
    # Unclipped N(0, 0.2^2) noise has MSE 0.04 whatever the image: 13.98 dB (the clipped input scores
    # ~16 dB on shapes, whose many 0 / 1 pixels lose half their noise to the clip).
    clean = shapes(size=32, train_size=8, val_size=64).val.images
    task = Denoise(sigma=0.2)
    inputs, target = task.make_batch(Split(clean), torch.Generator().manual_seed(0))
    m = task.metrics(inputs, target, target)
    assert m["input_psnr"].mean().item() == pytest.approx(10 * math.log10(1 / 0.04), abs=0.1)
    assert m["input_psnr_clipped"].mean().item() > m["input_psnr"].mean().item() + 1


# ---------------------------------------------------------------- SSIM
@pytest.mark.parametrize("shape", list(REFERENCE))
def test_ssim_matches_scikit_image(shape):
    x, y = pair(*shape)
    torch.testing.assert_close(ssim(y, x).double(), torch.tensor([REFERENCE[shape][0]], dtype=torch.float64),
                               rtol=0, atol=1e-6)


def test_ssim_of_constant_images_by_hand():
    # No variance: SSIM = luminance term (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01)^2.
    a, b = torch.full((1, 1, 12, 12), 0.2), torch.full((1, 1, 12, 12), 0.4)
    expected = (2 * 0.2 * 0.4 + 1e-4) / (0.2**2 + 0.4**2 + 1e-4)
    torch.testing.assert_close(ssim(a, b), torch.tensor([expected]))
    torch.testing.assert_close(ssim(b, b), torch.tensor([1.0]))


def test_ssim_under_11_px_uses_a_window_cropped_to_the_image():
    # Documented behaviour (the references refuse such images): defined, 1 for identical images,
    # and lower for a noisy copy.
    x, y = pair(1, 8, 8, 2)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert 0 < ssim(y, x).item() < 1


# ---------------------------------------------------------------- segmentation
# Two 3x3 masks, 4 classes; class 3 occurs in neither truth nor prediction.
TRUTH = torch.tensor([[[0, 0, 1], [0, 1, 1], [2, 2, 1]], [[0, 0, 0], [0, 0, 0], [0, 1, 1]]])
PRED = torch.tensor([[[0, 1, 1], [0, 1, 1], [2, 0, 0]], [[0, 0, 0], [0, 0, 2], [0, 1, 0]]])
CONFUSION = [[8, 1, 1, 0], [2, 4, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]  # sklearn.metrics.confusion_matrix
MIOU = 0.5067155067155067  # sklearn jaccard_score(average="macro"); torchmetrics MulticlassJaccardIndex 0.50671554
IOU = [0.6153846153846154, 0.5714285714285714, 0.3333333333333333, 0.0]  # per class; class 3 undefined
DICE = 0.663059163059163  # sklearn f1_score(average="macro") on the pixels = dataset-level Dice
MIOU_PER_IMAGE = (0.5 + 5 / 12) / 2  # torchmetrics per image: 0.5, 0.41667


def _logits(pred: torch.Tensor, n: int = 4) -> torch.Tensor:
    return torch.nn.functional.one_hot(pred, n).permute(0, 3, 1, 2).float() * 10


def _segment() -> Segment:
    task = Segment()
    task.classes, task._confusion = ["a", "b", "c", "d"], None
    return task


def test_confusion_rows_are_truth_columns_prediction():
    torch.testing.assert_close(confusion(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), 2),
                               torch.tensor([[1, 0], [1, 1]]))  # truth 1 predicted as 0: row 1, column 0
    assert confusion(PRED, TRUTH, 4).tolist() == CONFUSION


def test_iou_dice_per_class_from_the_confusion_matrix():
    iou, dice, present = iou_dice(torch.tensor(CONFUSION))
    torch.testing.assert_close(iou, torch.tensor(IOU, dtype=torch.float64))
    assert present.tolist() == [True, True, True, False]
    # class 0: TP 8, FP 3, FN 2 -> Dice 16 / 21
    assert dice[0].item() == pytest.approx(16 / 21)


def test_segment_miou_and_dice_are_over_the_split():
    task = _segment()
    logits = _logits(PRED)
    per_image = task.metrics(None, logits, TRUTH)
    task.observe(logits, TRUTH)
    split = task.split_metrics()
    assert split["miou"] == pytest.approx(MIOU)  # not (sum IOU) / 4: class 3 is absent
    assert split["dice"] == pytest.approx(DICE)
    assert per_image["miou_per_image"].mean().item() == pytest.approx(MIOU_PER_IMAGE)
    torch.testing.assert_close(per_image["pixel_acc"], torch.tensor([6 / 9, 7 / 9]))  # 13 / 18 = trace / sum of CONFUSION
    assert task.split_metrics() == {}  # reset after each eval


def test_split_miou_does_not_depend_on_the_batch_size():
    images = torch.zeros(2, 1, 3, 3)
    split = Split(images, masks=TRUTH)
    lookup = {0: _logits(PRED[:1]), 1: _logits(PRED[1:])}

    class Fixed(torch.nn.Module):  # a fixed "prediction" per image, whatever the batching
        def forward(self, inputs):
            return torch.cat([lookup[int(i)] for i in inputs[:, 0, 0, 0]])

    model = Fixed()
    split.images[1] = 1.0
    task = _segment()
    task.make_batch = lambda s, g: (s.images, s.masks)
    one, _ = evaluate(model, task, split, 1, lambda: torch.autocast("cpu", enabled=False))
    both, _ = evaluate(model, task, split, 2, lambda: torch.autocast("cpu", enabled=False))
    assert one["miou"] == pytest.approx(MIOU) and both["miou"] == pytest.approx(MIOU)
    assert one["miou_per_image"] == pytest.approx(MIOU_PER_IMAGE)


def test_dice_loss_by_hand():
    # 2 classes, prediction (near one-hot) [[0, 0], [1, 1]], truth [[0, 1], [1, 1]]:
    # class 0: inter 1, |p| + |t| = 3 -> (2 + 1) / (3 + 1); class 1: inter 2, 5 -> (4 + 1) / (5 + 1).
    truth = torch.tensor([[[0, 1], [1, 1]]])
    logits = _logits(torch.tensor([[[0, 0], [1, 1]]]), 2)
    dice_term = 1 - (3 / 4 + 5 / 6) / 2
    with_dice, without = Segment(dice_weight=1.0).loss(logits, truth), Segment().loss(logits, truth)
    assert (with_dice - without).item() == pytest.approx(dice_term, abs=1e-3)
    # cross-entropy: one wrong pixel of four at margin 10 -> ~10 / 4
    assert without.item() == pytest.approx(10 / 4, abs=1e-3)


# ---------------------------------------------------------------- classify, noise, normalisation
def test_accuracy_and_classify_confusion_orientation():
    task = Classify()
    task.classes, task._confusion = ["a", "b"], None
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    target = torch.tensor([0, 0, 0])
    torch.testing.assert_close(task.metrics(None, logits, target)["acc"], torch.tensor([1.0, 0.0, 1.0]))
    task.observe(logits, target)
    assert task._confusion.tolist() == [[2, 1], [0, 0]]  # truth 0: two predicted 0, one predicted 1


def test_salt_and_pepper_fraction():
    clean = torch.full((1, 1, 200, 200), 0.5)
    noisy, _ = Denoise(noise="salt_pepper", amount=0.2).make_batch(Split(clean), torch.Generator().manual_seed(0))
    # 40000 pixels: the fractions' standard error is ~0.002
    assert (noisy == 0).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert (noisy == 1).float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert (noisy == 0.5).float().mean().item() == pytest.approx(0.8, abs=0.01)


def test_normalisation_round_trip_and_unit_statistics():
    data = shapes(size=32, channels=3, train_size=64, val_size=8)
    task = Segment()
    task.setup(data)
    x = data.train.images
    z = task.prepare(x)
    torch.testing.assert_close(task.unprepare(z), x, rtol=0, atol=1e-5)
    # normalised with the training split's own statistics: zero mean, unit std per channel
    torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(3), rtol=0, atol=1e-4)
    torch.testing.assert_close(z.std((0, 2, 3), correction=0), torch.ones(3), rtol=0, atol=1e-3)


# ================================================================== found by mutation testing (round 2)
# Written from mutmut's survivors in issue 15m (docs/testing.md), from tests/test_mutants_tasks.py (its
# other tests are in test_tasks.py): every expected value is derived by hand, from a textbook formula
# written independently of ``skipbench.tasks`` (a brute-force SSIM over windows), or from a property of
# the definition (SSIM is invariant to the data range when the images scale with it).
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
