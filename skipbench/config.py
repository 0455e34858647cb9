"""Structured configs: the schema every YAML in ``configs/`` is checked against.

Registered in Hydra's ConfigStore as ``train_schema`` (the first default of ``train.yaml``) and as
``schema/<group>/<option>``, which each group file extends with ``defaults: [/schema/...@_here_]``.
Hydra then rejects a wrong type, an unknown key or an unknown enum value while composing, before
anything is built. Ranges that types cannot express are checked by :func:`check_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from .errors import ConfigError  # noqa: F401  (re-exported: skipbench.config.ConfigError)
from . import run_names  # noqa: F401  registers the resolver that names sweep jobs (train.yaml)


class _Choice(str, Enum):
    """A string choice: ``str(x)`` and f-strings give the bare value (``concat``, not ``LongSkip.concat``)."""

    def __str__(self) -> str:
        return self.value


class LongSkip(_Choice):
    none = "none"
    concat = "concat"
    add = "add"
    crop_concat = "crop_concat"


class Block(_Choice):
    plain = "plain"
    residual = "residual"
    dense = "dense"
    highway = "highway"


class Noise(_Choice):
    gaussian = "gaussian"
    salt_pepper = "salt_pepper"


class Device(_Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# ---------------------------------------------------------------- model
@dataclass
class ModelConfig:
    _target_: str = "skipbench.models.build_model"
    name: str = MISSING
    long_skip: LongSkip = LongSkip.none
    block: Block = Block.plain
    depth: int = 3  # 2x downsamplings; bottleneck at H / 2**depth
    width: int = 16  # channels of the first level, doubled at each level
    blocks_per_level: int = 1  # each block is two 3x3 convs deep
    zero_init_residual: bool = False
    highway_gate_bias: float = -2.0
    dense_growth: Optional[int] = None  # channels per dense layer; default max(4, out_ch // layers)
    padding: int = 1  # 1 = padded 3x3 convs; 0 = valid convs as in the original U-Net (output smaller)


# ---------------------------------------------------------------- data sets
@dataclass
class ShapesConfig:
    _target_: str = "skipbench.data.shapes"
    size: int = 32  # 32..128 (any size >= 2**depth works)
    channels: int = 1  # 1 (grey) or 3 (colour)
    train_size: int = 4096
    val_size: int = 512
    max_shapes: int = 4
    seed: int = 0  # the data's own seed: the same images whatever the training seed


@dataclass
class MnistConfig:
    _target_: str = "skipbench.data.mnist.mnist"
    root: str = "data/mnist"  # holds the four IDX files (.gz or not), or MNIST/raw/ under it
    download: bool = False  # fetch the official files (checksums verified)
    size: Optional[int] = None  # resize 28 -> size (e.g. 32)
    train_size: Optional[int] = None  # first N training images (None = all 60000)
    val_size: Optional[int] = None  # first N test images (None = all 10000)


@dataclass
class FashionMnistConfig(MnistConfig):
    _target_: str = "skipbench.data.mnist.fashion_mnist"
    root: str = "data/fashion_mnist"


@dataclass
class Cifar10Config(MnistConfig):
    _target_: str = "skipbench.data.cifar.cifar10"
    root: str = "data/cifar10"  # holds cifar-10-batches-py/ or cifar-10-python.tar.gz


@dataclass
class FolderConfig:
    _target_: str = "skipbench.data.folder.folder"
    root: str = MISSING  # your images (PNG/JPEG/BMP, searched recursively; class sub-folders for classify)
    masks: Optional[str] = None  # parallel folder of PNG masks (default: <root>/../masks if present)
    crop: int = 64  # crop size in pixels
    crops_per_image: int = 8  # random training crops per image
    val_fraction: float = 0.1  # images held out for validation (by a hash of the path)
    channels: int = 3  # 1 = grey, 3 = RGB
    seed: int = 0


@dataclass
class DigitsConfig:
    _target_: str = "skipbench.data.digits.digits"
    size: int = 32  # scikit-learn's 8x8 digits, upsampled
    val_fraction: float = 0.2
    seed: int = 0


# ---------------------------------------------------------------- tasks
@dataclass
class DenoiseConfig:
    _target_: str = "skipbench.tasks.Denoise"
    noise: Noise = Noise.gaussian
    sigma: float = 0.2  # std of the additive Gaussian noise (images are in [0, 1])
    amount: float = 0.1  # salt_pepper: fraction of pixels set to 0 or 1


@dataclass
class SegmentConfig:
    _target_: str = "skipbench.tasks.Segment"
    dice_weight: float = 0.0  # loss = cross-entropy + dice_weight * (1 - soft Dice)


@dataclass
class ClassifyConfig:
    _target_: str = "skipbench.tasks.Classify"


@dataclass
class ReconstructConfig:
    _target_: str = "skipbench.tasks.Reconstruct"


# ---------------------------------------------------------------- optimizers (partial: params come later)
@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0  # never applied to norm weights or biases


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    _convert_: str = "all"  # betas as a plain list, so checkpoints hold no omegaconf objects
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass
class AdamWConfig(AdamConfig):
    _target_: str = "torch.optim.AdamW"
    weight_decay: float = 0.01


# ---------------------------------------------------------------- schedulers (partial: optimizer, total steps)
@dataclass
class ConstantScheduleConfig:
    _target_: str = "skipbench.train.schedule.constant"
    _partial_: bool = True


@dataclass
class CosineScheduleConfig:
    _target_: str = "skipbench.train.schedule.warmup_cosine"
    _partial_: bool = True
    warmup_steps: int = 100  # linear warmup from 0
    min_lr_ratio: float = 0.0  # final lr = lr * min_lr_ratio


# ---------------------------------------------------------------- trainer and the root
@dataclass
class TrainerConfig:
    max_steps: int = 600
    batch_size: int = 32
    eval_every: int = 100  # steps between evaluations (and checkpoints); also at the end
    log_every: int = 20  # steps between scalar / gradient-norm writes
    device: Device = Device.auto  # auto = cuda when available, else cpu
    num_threads: Optional[int] = None  # torch CPU threads; None = torch's default
    amp: bool = False  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = False
    compile: bool = False  # torch.compile the model
    grad_clip: Optional[float] = None  # max global gradient norm
    progress: bool = True  # tqdm bar


@dataclass
class DiagnosticsConfig:
    grad_norms: bool = True  # per-layer gradient L2 norms, total, first/last ratio (every log_every)
    weight_norms: bool = True  # per-layer weight L2 norms (every log_every)
    update_ratios: bool = True  # per-layer ||w_after - w_before|| / ||w_before|| (every log_every)
    activations: bool = True  # per-block output mean/std on a fixed probe batch (each eval)
    grad_flow: bool = True  # gradient-flow heat map + grad norm vs depth figures (each eval)
    images: bool = True  # input / output / target grid (each eval)
    num_images: int = 8


@dataclass
class TrainConfig:
    model: Any = MISSING
    dataset: Any = MISSING
    task: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    seed: int = 0  # model init, batch order, noise
    resume: Optional[str] = None  # a run directory (or its checkpoint.pt) to continue; auto = this run's own, if any
    tuned_lr: dict[str, float] = field(default_factory=dict)  # model.name -> lr, from tuned=<task>_<dataset>


SCHEMAS = {
    "model": {"base": ModelConfig},
    "dataset": {"shapes": ShapesConfig, "mnist": MnistConfig, "fashion_mnist": FashionMnistConfig,
                "cifar10": Cifar10Config, "folder": FolderConfig, "digits": DigitsConfig},
    "task": {"denoise": DenoiseConfig, "reconstruct": ReconstructConfig, "segment": SegmentConfig,
             "classify": ClassifyConfig},
    "optimizer": {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig},
    "scheduler": {"none": ConstantScheduleConfig, "cosine": CosineScheduleConfig},
}


def safe_dirname(name: str) -> str:
    """A sweep job's folder name from its overrides (``${safe_dirname:...}`` in train.yaml): path
    separators replaced, cut to fit a file name, so no override value can put a job outside the sweep."""
    import hashlib

    safe = name.replace("/", "_").replace("\\", "_").replace("\0", "_")
    if safe in ("", ".", ".."):
        safe = safe.replace(".", "_") or "_"
    if len(safe.encode()) > 180:  # file names are limited to 255 bytes; keep room for the job number
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        safe = safe.encode()[:160].decode(errors="ignore") + "..." + digest
    return safe


# At import: sweep workers (joblib, submitit) resolve job folder names before anything else runs.
OmegaConf.register_new_resolver("safe_dirname", safe_dirname, replace=True)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def config_dir() -> Path:
    """The configs shipped inside the wheel, or the checkout's ``configs/`` (editable install)."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "configs"


SEED_LIMIT = 2**32


def check_config(cfg: DictConfig) -> None:
    """Range checks that types cannot express; raises :class:`ConfigError` naming key and rule."""
    t, m, d = cfg.trainer, cfg.model, cfg.dataset

    def require(ok: bool, key: str, value: Any, rule: str) -> None:
        if not ok:
            raise ConfigError(f"{key}={value}: {rule}")

    for key in ("max_steps", "batch_size", "eval_every", "log_every"):
        require(t[key] >= 1, f"trainer.{key}", t[key], "must be an integer >= 1")
    # Seeds feed torch generators (64-bit), multiplied by ~1e6 for per-step and per-epoch streams.
    for key, seed in (("seed", cfg.seed), ("dataset.seed", d.get("seed", 0))):
        require(0 <= seed < SEED_LIMIT, key, seed, f"must be an integer in [0, 2**32 - 1]")
    require(t.num_threads is None or t.num_threads >= 1, "trainer.num_threads", t.num_threads, "must be >= 1 or null")
    require(t.grad_clip is None or t.grad_clip > 0, "trainer.grad_clip", t.grad_clip, "must be > 0 or null")
    require(m.depth >= 0, "model.depth", m.depth, "must be an integer >= 0")
    require(m.width >= 1, "model.width", m.width, "must be an integer >= 1")
    require(m.blocks_per_level >= 1, "model.blocks_per_level", m.blocks_per_level, "must be an integer >= 1")
    require(m.dense_growth is None or m.dense_growth >= 1, "model.dense_growth", m.dense_growth, "must be >= 1 or null")
    tuned = cfg.get("tuned_lr") or {}
    if tuned and m.name not in tuned:  # checked first: optimizer.lr interpolates ${tuned_lr.${model.name}}
        raise ConfigError(f"tuned: no tuned learning rate for model={m.name}; tuned: {', '.join(tuned)} "
                          "(tune it with scripts/tune_lr.py --models ..., or drop tuned=)")
    require(cfg.optimizer.lr > 0, "optimizer.lr", cfg.optimizer.lr, "must be > 0")
    require(cfg.optimizer.weight_decay >= 0, "optimizer.weight_decay", cfg.optimizer.weight_decay, "must be >= 0")
    if "momentum" in cfg.optimizer:
        require(0 <= cfg.optimizer.momentum < 1, "optimizer.momentum", cfg.optimizer.momentum, "must be in [0, 1)")
    if "warmup_steps" in cfg.scheduler:
        require(cfg.scheduler.warmup_steps >= 0, "scheduler.warmup_steps", cfg.scheduler.warmup_steps, "must be >= 0")
        require(cfg.scheduler.warmup_steps < t.max_steps, "scheduler.warmup_steps", cfg.scheduler.warmup_steps,
                f"must be < trainer.max_steps ({t.max_steps}), else the lr never leaves its warmup")
        require(0 <= cfg.scheduler.min_lr_ratio <= 1, "scheduler.min_lr_ratio", cfg.scheduler.min_lr_ratio, "must be in [0, 1]")
    if "sigma" in cfg.task:
        require(cfg.task.sigma >= 0, "task.sigma", cfg.task.sigma, "must be >= 0")
        require(0 <= cfg.task.amount <= 1, "task.amount", cfg.task.amount, "must be in [0, 1]")
    if "dice_weight" in cfg.task:
        require(cfg.task.dice_weight >= 0, "task.dice_weight", cfg.task.dice_weight, "must be >= 0")
    if str(t.device) == "cuda":
        import torch

        require(torch.cuda.is_available(), "trainer.device", t.device, "no CUDA device is available here; use auto or cpu")
    require(m.padding in (0, 1), "model.padding", m.padding, "must be 1 (padded convs) or 0 (valid convs)")
    if m.padding == 0:
        require(str(m.long_skip) in ("crop_concat", "none"), "model.long_skip", m.long_skip,
                "valid convs (model.padding=0) need long_skip crop_concat or none")
    size = d.get("crop") or d.get("size")  # known before loading for shapes, digits, folder, resized sets
    if size:
        check_image_size(cfg, size)
    if "root" in d.keys() and OmegaConf.is_missing(d, "root"):
        raise ConfigError("dataset.root is not set: give the folder of your images, e.g. dataset.root=~/photos")
    if "max_shapes" in d:
        require(d.max_shapes >= 1, "dataset.max_shapes", d.max_shapes, "must be >= 1")
    if "channels" in d:
        require(d.channels in (1, 3), "dataset.channels", d.channels, "must be 1 or 3")
    for key in ("train_size", "val_size", "crops_per_image", "crop"):
        require(d.get(key) is None or d[key] >= 1, f"dataset.{key}", d.get(key), "must be >= 1")
    if d.get("train_size") is not None:
        require(d.train_size >= t.batch_size, "dataset.train_size", d.train_size,
                f"must be >= trainer.batch_size ({t.batch_size})")
    if "val_fraction" in d:
        require(0 < d.val_fraction < 1, "dataset.val_fraction", d.val_fraction, "must be in (0, 1)")
    require(cfg.diagnostics.num_images >= 1, "diagnostics.num_images", cfg.diagnostics.num_images, "must be >= 1")



def check_image_size(cfg: DictConfig, size: int) -> None:
    """The model must fit the images: ``2**depth`` pixels, more with valid convs."""
    m = cfg.model
    if size < 2**m.depth:
        raise ConfigError(f"model.depth={m.depth}: needs images of at least 2**{m.depth} = {2**m.depth} pixels, "
                          f"but the images are {size} px")
    if m.padding == 0:
        from .models.encdec import valid_output_size

        smallest = next(s for s in range(1, 4096) if valid_output_size(s, m.depth, m.blocks_per_level) >= 1)
        if size < smallest:
            raise ConfigError(f"dataset image size {size} px: valid convs (model.padding=0) at model.depth={m.depth}, "
                              f"blocks_per_level={m.blocks_per_level} need >= {smallest} px")
        from hydra.utils import get_class

        from .models.encdec import check_valid_size

        why = check_valid_size(size, m.depth, m.blocks_per_level)
        if why and get_class(cfg.task._target_).head == "pixels":  # a classifier has no decoder to misalign
            raise ConfigError(f"dataset image size {why} (model.depth={m.depth}, blocks_per_level={m.blocks_per_level})")
