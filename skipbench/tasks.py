"""Tasks turn a batch of a data split into ``(input, target)`` and say how to score the output.

A task is built by Hydra from ``configs/task/<name>.yaml``, then :meth:`Task.setup` reads what it
needs from the data set (classes, normalisation). The loop uses a task only through its methods,
so adding a task never touches the loop.

===========  ======================  ==========================  ===================================
task         input -> target         loss                        metrics (headline first)
===========  ======================  ==========================  ===================================
reconstruct  image -> same image     MSE                         PSNR (dB), SSIM
denoise      image + noise -> image  MSE                         PSNR, SSIM, input PSNR (baseline)
segment      image -> class mask     cross-entropy (+ Dice)      mean IoU, Dice (over the split), pixel acc.
classify     image -> label          cross-entropy               top-1 accuracy (+ confusion matrix)
===========  ======================  ==========================  ===================================

Models with valid convs (``unet_crop``) output a centre region of the input: targets (and the
inputs shown in TensorBoard) are centre-cropped to the output in every loss, metric and picture.

Metric conventions (checked against scikit-image, torchmetrics and scikit-learn in tests/tasks/test_metrics.py):

- PSNR of the model output clamps the output to [0, 1] (an image is displayed and saved clamped);
  ``input_psnr`` scores the noisy input exactly as the model receives it (Gaussian noise unclipped);
  ``input_psnr_clipped`` is the same input clamped to [0, 1], the trivial "clip the noise" baseline.
- SSIM: Wang et al. 2004 (Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, population
  covariances), mean over the 'valid' region, as ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` and torchmetrics. Images under 11 px
  (tiny ``unet_crop`` outputs) use a window cropped to the image: not comparable with published SSIM.
- Segmentation ``miou`` / ``dice``: per class from the confusion matrix accumulated over the whole
  split (VOC / Cityscapes; torchmetrics' dataset-level ``JaccardIndex``), averaged over the classes
  that occur in the truth or the prediction of the split (a class absent from both has no IoU).
  ``miou_per_image`` / ``dice_per_image`` are the mean over images of each image's own mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConfigError
from .data import ImageData, Split
from .models.blocks import crop_to


# ---------------------------------------------------------------- metrics
def psnr(output: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, clamp: bool = True) -> torch.Tensor:
    """Per-image PSNR in dB, ``[B, C, H, W] x2 -> [B]``; ``clamp``: the output is clamped to the data range."""
    mse = ((output.clamp(0, data_range) if clamp else output) - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-10))


def ssim(output: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004: Gaussian 11x11 window, sigma 1.5, K1=0.01, K2=0.03), ``-> [B]``.

    'Valid' filtering as in the reference implementation. Images smaller than 11 pixels get a window
    cropped to the image (same sigma); the reference implementations refuse them.
    """
    x, y = output.clamp(0, data_range).float(), target.float()
    c = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    g = torch.exp(-((torch.arange(window, device=x.device) - (window - 1) / 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).float()
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()
    blur = lambda z: F.conv2d(z, kernel, groups=c)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def confusion(pred: torch.Tensor, target: torch.Tensor, n: int) -> torch.Tensor:
    """``[n, n]`` counts, rows = true class, columns = predicted (any shapes, class ids)."""
    return torch.bincount(target.flatten() * n + pred.flatten(), minlength=n * n).view(n, n)


def iou_dice(conf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class IoU and Dice from a ``[n, n]`` confusion matrix (rows = truth), ``-> [n], [n], present [n]``.

    IoU = TP / (TP + FP + FN), Dice = 2 TP / (2 TP + FP + FN); ``present``: the class occurs in the
    truth or the prediction (its IoU is defined); absent classes get 0 and must not be averaged.
    """
    conf = conf.double()
    tp = conf.diagonal()
    union = conf.sum(0) + conf.sum(1) - tp  # predicted + true - both
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), 0)
    dice = torch.where(present, 2 * tp / (union + tp).clamp_min(1), 0)
    return iou, dice, present


def palette(n: int, device=None) -> torch.Tensor:
    """``[n, 3]`` distinct colours in [0, 1]; class 0 (background) is black."""
    hues = torch.arange(n, dtype=torch.float32, device=device) / max(1, n - 1)
    k = (torch.tensor([5.0, 3.0, 1.0], device=device)[None] + hues[:, None] * 6) % 6
    rgb = 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)  # HSV -> RGB with s = v = 1
    rgb[0] = 0
    return rgb


# ---------------------------------------------------------------- tasks
class Task:
    """Base class. ``metric`` names the headline validation metric (higher is better)."""

    name = "task"
    metric = "psnr"
    head = "pixels"  # what the model must output: "pixels" (a map) or "classes" (a vector)
    loss_name = "mse"  # names the loss in TensorBoard tags (loss/mse/train): no chart mixes two losses
    normalize = False  # feed the model (x - mean) / std instead of [0, 1] images
    classes: tuple[str, ...] | list[str] = ()  # segment / classify: the model outputs one channel (logit) per class

    def setup(self, data: ImageData) -> None:
        """Read what the task needs from the data set; :class:`ConfigError` if it cannot serve it."""
        self.channels = data.channels
        self._stats = torch.tensor([data.mean, data.std]).view(2, 1, -1, 1, 1)
        self._stats[1].clamp_(min=1e-6)

    @property
    def out_channels(self) -> int:
        return len(self.classes) or self.channels

    def _mean_std(self, like: torch.Tensor) -> torch.Tensor:
        # Moved to the data's device once, not on every batch (a host-to-device copy per step on GPU).
        if self._stats.device != like.device:
            self._stats = self._stats.to(like.device)
        return self._stats

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> what the model sees (normalised for segment / classify)."""
        if not self.normalize:
            return images
        mean, std = self._mean_std(images)
        return (images - mean) / std

    def unprepare(self, inputs: torch.Tensor) -> torch.Tensor:
        """Model inputs -> [0, 1] images for pictures (inverse of :meth:`prepare`)."""
        if not self.normalize:
            return inputs
        mean, std = self._mean_std(inputs)
        return (inputs * std + mean).clamp(0, 1)

    def make_batch(self, split: Split, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(output.float(), crop_to(target, output))

    def metrics(self, inputs: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample values ``[B]`` for each metric; the loop averages them over the split."""
        target = crop_to(target, output)
        return {"psnr": psnr(output.float(), target), "ssim": ssim(output.float(), target)}

    def observe(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """Called on every validation batch, for whole-split statistics (confusion matrix)."""

    def split_metrics(self) -> dict[str, float]:
        """Metrics of the whole split from what :meth:`observe` gathered; called once after each eval."""
        return {}

    def figures(self) -> dict:
        """Whole-split figures for TensorBoard after an eval (``{tag: matplotlib figure}``)."""
        return {}

    input_caption = "input"

    def sample_rows(self, inputs: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Captioned rows ``(caption, [N, C, H, W] in [0, 1])`` for the TensorBoard grid: input, output, target."""
        return [(self.input_caption, crop_to(inputs, output).clamp(0, 1)), ("output", output.float().clamp(0, 1)),
                ("target", crop_to(target, output))]

    def sample_labels(self, output: torch.Tensor, target: torch.Tensor) -> list[str] | None:
        """Text under each column of the grid (classify: predicted and true class), or None."""
        return None

    def legend(self) -> list[tuple[str, tuple[float, float, float]]] | None:
        """Colour legend of the grid (segment: class names and their colours), or None."""
        return None


class Reconstruct(Task):
    """Identity target: the autoencoder experiment. Everything must pass the bottleneck unless skipped."""

    name = "reconstruct"

    def make_batch(self, split, generator):
        return split.images, split.images


class Denoise(Task):
    """Input = image + noise, target = the clean image.

    ``noise=gaussian``: add N(0, sigma^2), not clipped. ``noise=salt_pepper``: a fraction ``amount``
    of pixels (per channel) set to 0 or 1 with equal odds.
    """

    name = "denoise"
    input_caption = "noisy input"

    def __init__(self, sigma: float = 0.2, noise: str = "gaussian", amount: float = 0.1) -> None:
        self.sigma, self.noise, self.amount = sigma, str(noise), amount

    def make_batch(self, split, generator):
        clean = split.images
        if self.noise == "salt_pepper":
            u = torch.rand(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
            noisy = torch.where(u < self.amount / 2, 0.0, torch.where(u > 1 - self.amount / 2, 1.0, clean))
            return noisy, clean
        noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
        return clean + self.sigma * noise, clean

    def metrics(self, inputs, output, target):
        # The noisy input's PSNR is the baseline a denoiser must beat: scored as the model receives it.
        inputs, target = crop_to(inputs, output), crop_to(target, output)
        return {**super().metrics(inputs, output, target), "input_psnr": psnr(inputs, target, clamp=False),
                "input_psnr_clipped": psnr(inputs, target)}


class Segment(Task):
    """Per-pixel classes from the data set's masks; cross-entropy plus ``dice_weight`` x soft-Dice loss."""

    name = "segment"
    metric = "miou"
    normalize = True

    def __init__(self, dice_weight: float = 0.0) -> None:
        self.dice_weight = dice_weight

    @property
    def loss_name(self) -> str:
        return "ce_dice" if self.dice_weight else "ce"

    def setup(self, data):
        super().setup(data)
        self.classes = _require(data, self.name, "per-pixel masks", data.seg_classes)
        self._confusion = None

    def make_batch(self, split, generator):
        return self.prepare(split.images), split.masks

    def loss(self, output, target):
        target = crop_to(target, output)
        loss = F.cross_entropy(output.float(), target)
        if self.dice_weight:
            prob = output.float().softmax(1)
            onehot = F.one_hot(target, prob.shape[1]).permute(0, 3, 1, 2).float()
            inter, total = (prob * onehot).sum((0, 2, 3)), (prob + onehot).sum((0, 2, 3))
            loss = loss + self.dice_weight * (1 - ((2 * inter + 1) / (total + 1)).mean())
        return loss

    def metrics(self, inputs, output, target):
        target = crop_to(target, output)
        pred = output.argmax(1)
        n = len(self.classes)
        p, t = F.one_hot(pred, n).flatten(1, 2).bool(), F.one_hot(target, n).flatten(1, 2).bool()  # [B, HW, n]
        inter, union = (p & t).sum(1).float(), (p | t).sum(1).float()  # [B, n]
        present = union > 0  # classes absent from both prediction and truth do not count
        iou = torch.where(present, inter / union.clamp_min(1), 0).sum(1) / present.sum(1).clamp_min(1)
        sizes = p.sum(1).float() + t.sum(1).float()
        dice = torch.where(present, 2 * inter / sizes.clamp_min(1), 0).sum(1) / present.sum(1).clamp_min(1)
        # Per-image means only under their own names: miou / dice are over the split (split_metrics).
        return {"miou_per_image": iou, "dice_per_image": dice, "pixel_acc": (pred == target).flatten(1).float().mean(1)}

    def observe(self, output, target):
        c = confusion(output.argmax(1), crop_to(target, output), len(self.classes))
        self._confusion = c if self._confusion is None else self._confusion + c

    def split_metrics(self):
        if self._confusion is None:
            return {}
        iou, dice, present = iou_dice(self._confusion)
        self._confusion = None
        n = present.sum().clamp_min(1)
        return {"miou": (iou.sum() / n).item(), "dice": (dice.sum() / n).item()}

    def sample_rows(self, inputs, output, target):
        colours = palette(len(self.classes), output.device)
        show = lambda m: colours[m].permute(0, 3, 1, 2)  # noqa: E731  [B,H,W] ids -> [B,3,H,W]
        image = crop_to(self.unprepare(inputs), output)
        return [("input", image.expand(-1, 3, -1, -1)), ("predicted", show(output.argmax(1))),
                ("true mask", show(crop_to(target, output)))]

    def legend(self):
        return list(zip(self.classes, map(tuple, palette(len(self.classes)).tolist())))


class Classify(Task):
    """Image label from the encoder + pooled linear head; top-1 accuracy and a confusion matrix."""

    name = "classify"
    metric = "acc"
    head = "classes"
    loss_name = "ce"
    normalize = True

    def __init__(self, normalization: str = "channel") -> None:
        self.normalization = normalization

    def setup(self, data):
        super().setup(data)
        if self.normalization == "pixel_mean":  # He et al. 2016a: subtract the training split's mean image, no std
            mean = data.train.images.float().mean(0, keepdim=True)  # [1, C, H, W]
            self._stats = torch.stack([mean, torch.ones_like(mean)])  # [2, 1, C, H, W], as (mean, std)
        self.classes = _require(data, self.name, "image labels", data.classes)
        self._confusion = None

    def make_batch(self, split, generator):
        return self.prepare(split.images), split.labels

    def loss(self, output, target):
        return F.cross_entropy(output.float(), target)

    def metrics(self, inputs, output, target):
        return {"acc": (output.argmax(1) == target).float()}

    def observe(self, output, target):
        c = confusion(output.argmax(1), target, len(self.classes))
        self._confusion = c if self._confusion is None else self._confusion + c

    def figures(self):
        if self._confusion is None:
            return {}
        from .figures import confusion_matrix

        fig = confusion_matrix(self._confusion.cpu().tolist(), self.classes)
        self._confusion = None
        return {"confusion/val": fig}

    def sample_rows(self, inputs, output, target):
        # One row of inputs, bordered green (right) or red (wrong); sample_labels names the classes.
        image = self.unprepare(inputs).expand(-1, 3, -1, -1)
        ok = (output.argmax(1) == target).float().view(-1, 1, 1, 1)
        border = torch.cat([1 - ok, ok, torch.zeros_like(ok)], 1).expand(-1, 3, image.shape[-2] + 4, image.shape[-1] + 4)
        framed = border.clone()
        framed[..., 2:-2, 2:-2] = image
        return [("input", framed)]

    def sample_labels(self, output, target):
        names = [self.classes[i] for i in output.argmax(1).tolist()], [self.classes[i] for i in target.tolist()]
        return [f"pred {p}\ntrue {t}" for p, t in zip(*names)]


def _require(data: ImageData, task: str, what: str, classes: list[str]) -> list[str]:
    """The data set's classes for ``task``, or a one-line :class:`ConfigError` saying what it lacks."""
    if task not in supported_tasks(data):
        raise ConfigError(f"task={task}: dataset={data.name} has no {what}; it supports: {', '.join(supported_tasks(data))}")
    return list(classes)


def supported_tasks(data: ImageData) -> list[str]:
    """Which tasks a data set can serve: pixel tasks always; segment with masks; classify with labels."""
    tasks = ["reconstruct", "denoise"]
    if data.train.masks is not None and data.seg_classes:
        tasks.append("segment")
    if data.train.labels is not None and data.classes:
        tasks.append("classify")
    return tasks
