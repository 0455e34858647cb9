"""Structured configs: the schema every YAML in ``configs/`` is checked against.

Registered in Hydra's ConfigStore as ``train_schema`` (the first default of ``train.yaml``) and as
``schema/<group>/<option>``, which each group file extends with ``defaults: [/schema/...@_here_]``.
Hydra then rejects a wrong type, an unknown key or an unknown enum value while composing, before
anything is built. The model options (``schema/model/<name>``) are made from the variant table,
:data:`skipbench.models.registry.MODELS`. Ranges that types cannot express are checked by
:func:`check_config` (the rules no constructor or loader owns) and, once per run, by
:func:`skipbench.train.validate.check_runnable`.

Each default lives once, here: a schema states every key of its node with its default, and a file in
``configs/`` holds only what its option changes from the schema it extends (``model/unet_crop.yaml``'s
``depth: 1``), besides its ``defaults:`` list. Here rather than in the YAML because the schema must
name every key anyway (types, enum values and unknown keys are checked against it), the model options
are made from the registry with no YAML values of their own, and code that builds a node from a
schema class gets the same defaults as the command line. Experiment and tuned presets are not
defaults: they pin their values whatever the defaults become; the launcher files
(``configs/hydra/launcher/``) extend the submitit plugin's schemas, not these, and pin the job sizes a
plugin release could change. ``tests/configs/test_defaults_once.py`` fails on an option file that
repeats a schema default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, DictConfig, OmegaConf

from .errors import ConfigError  # noqa: F401  (re-exported: skipbench.config.ConfigError)
from . import run_names  # noqa: F401  registers the resolver that names sweep jobs (train.yaml)


class _Choice(str, Enum):
    """A string choice: ``str(x)`` and f-strings give the bare value (``concat``, not ``LongSkip.concat``)."""

    def __str__(self) -> str:
        return self.value


class Noise(_Choice):
    gaussian = "gaussian"
    salt_pepper = "salt_pepper"


class CompileMode(_Choice):
    default = "default"
    reduce_overhead = "reduce-overhead"  # CUDA graphs: a small model is no longer bound by kernel launches
    max_autotune = "max-autotune"
    max_autotune_no_cudagraphs = "max-autotune-no-cudagraphs"


class Device(_Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# ---------------------------------------------------------------- model
@dataclass
class BlockKnobs:
    """What both skeletons share: the variant's name and skips, and the block knobs (skipbench/models/blocks.py)."""

    _target_: str = "skipbench.models.build_model"
    name: str = MISSING  # the variant (model=<name>): labels the run folder, TensorBoard and the report
    long_skip: str = MISSING  # a name in skipbench/models/merges.py MERGES (the variant's own unless overridden)
    block: str = MISSING  # a name in skipbench/models/blocks.py BLOCKS (the variant's own unless overridden)
    width: int = 16  # channels of the first level, doubled at each level (mlp: units of every hidden layer)
    zero_init_residual: bool = False  # residual blocks: last norm's weight 0 at init, so each block starts as identity
    highway_gate_bias: float = -2.0  # highway blocks: initial gate bias; negative = carry the input at first
    dense_growth: Optional[int] = None  # channels per dense layer; default max(4, out_ch // layers)
    padding: int = MISSING  # 1 = padded 3x3 convs; 0 = valid convs as in the original U-Net (output smaller)
    norm: str = "batch"  # batch | group | none (no norm modules; the layers get biases instead)
    norm_groups: int = 8  # GroupNorm: gcd(norm_groups, channels) groups in each norm
    residual_scale: str = "none"  # none | rezero | skipinit | fixup (residual blocks; fixup needs norm=none)
    shortcut: str = "identity"  # identity | scaled | gated | shortcut_gated | conv1x1 | dropout (He 2016b Table 1)
    shortcut_scale: float = 0.5  # shortcut=scaled: F + scale * x
    shortcut_gate_bias: float = -6.0  # shortcut=gated / shortcut_gated: initial b_g of g = sigmoid(W_g x + b_g)
    shortcut_dropout: float = 0.5  # shortcut=dropout: drop probability on the shortcut
    drop_path: float = 0.0  # stochastic depth: the last residual block's drop probability (linear in depth; 0.5 = Huang)
    seed: int = II("seed")  # the run's seed: stochastic depth's draws (skipbench/seeds.py, purpose drop_path)


@dataclass
class ModelConfig(BlockKnobs):
    """One per conv variant (``schema/model/<name>``), its name and skips from :data:`skipbench.models.registry.MODELS`."""

    depth: int = 3  # 2x downsamplings; bottleneck at H / 2**depth
    blocks_per_level: int = 1  # each block is two 3x3 convs deep


@dataclass
class MLPModelConfig(BlockKnobs):
    """One per fully connected variant (skeleton ``mlp``): classify only, on flattened images."""

    width: int = 32
    num_layers: int = 10  # hidden layers in the blocks (even: two per block); plus the stem and the head
    input_size: int = 8  # images are area-averaged to input_size x input_size, then flattened


@dataclass
class CustomModelConfig:
    """``model=custom``: your own ``nn.Module`` (:mod:`skipbench.models.custom`)."""

    _target_: str = "skipbench.models.custom.build_custom"
    target: str = MISSING  # import path of an nn.Module class or a function returning one (mypkg.nets.TinyNet, mynet.build)
    name: str = "${model_label:${.target}}"  # the run's label (console, folder, TensorBoard, report); default from target
    kwargs: dict[str, Any] = field(default_factory=dict)  # more keyword arguments for target (+model.kwargs.hidden=32)


@dataclass
class CifarModelConfig(BlockKnobs):
    """He et al. 2016a's CIFAR nets (skeleton ``cifar``): 6n+2 layers at 16/32/64 channels."""

    n: int = 3  # blocks per stage: 3, 5, 7, 9, 18 = ResNet-20, 32, 44, 56, 110


@dataclass
class PaperModelConfig:
    """What every paper network's schema names (it has one block and one padding: not knobs)."""

    _target_: str = "skipbench.models.build_model"
    name: str = MISSING  # the variant's name (set by configs/model/<name>.yaml)
    long_skip: str = MISSING  # the paper's long skip (none / add / concat); rednet: add or none
    block: str = MISSING  # the paper's block (fixed by the architecture)
    padding: int = MISSING  # 1 = same-size convs, 0 = valid convs (fixed by the architecture)


@dataclass
class DenseNetBCConfig(PaperModelConfig):
    """Huang et al. 2017's DenseNet-BC for 32 px images (skeleton ``densenet_bc``)."""

    L: int = 100  # weight layers: (L - 4) / 6 bottleneck layers per dense block
    k: int = 12  # growth rate
    compression: float = 0.5  # theta: a transition keeps floor(theta * channels)


@dataclass
class RedNetConfig(PaperModelConfig):
    """Mao et al. 2016's RED-Net (skeleton ``rednet``); model.long_skip=none drops its skips."""

    depth: int = 30  # weight layers: depth / 2 convs + depth / 2 deconvs
    width: int = 128  # feature maps of every hidden layer
    skip_every: int = 2  # a symmetric skip every skip_every layers


# ---------------------------------------------------------------- data sets
@dataclass
class ShapesConfig:
    _target_: str = "skipbench.data.shapes"
    size: int = 32  # 32..128 (any size >= 2**depth works)
    channels: int = 1  # 1 (grey) or 3 (colour)
    train_size: int = 4096  # training images drawn
    val_size: int = 512  # validation images drawn (a stream of their own)
    max_shapes: int = 4  # at most this many shapes per image
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
    holdout: Optional[int] = None  # val = the last N training images (He et al.: 5000, a 45k/5k split); null = test set


@dataclass
class FolderConfig:
    _target_: str = "skipbench.data.folder.folder"
    root: str = MISSING  # required, e.g. dataset.root=~/photos: PNG/JPEG/BMP, searched recursively; class sub-folders for classify
    masks: Optional[str] = None  # parallel folder of PNG masks (default: <root>/../masks if present)
    crop: int = 64  # crop size in pixels
    crops_per_image: int = 8  # random training crops per image
    val_fraction: float = 0.1  # images held out for validation (by a hash of the path)
    channels: int = 3  # 1 = grey, 3 = RGB
    seed: int = 0  # the training crops' own seed


@dataclass
class DigitsConfig:
    _target_: str = "skipbench.data.digits.digits"
    size: int = 32  # scikit-learn's 8x8 digits, upsampled
    val_fraction: float = 0.2  # images held out for validation
    seed: int = 0  # the split's own seed


# ---------------------------------------------------------------- tasks
@dataclass
class DenoiseConfig:
    _target_: str = "skipbench.tasks.Denoise"
    noise: Noise = Noise.gaussian  # gaussian | salt_pepper
    sigma: float = 0.2  # std of the additive Gaussian noise (images are in [0, 1])
    amount: float = 0.1  # salt_pepper: fraction of pixels set to 0 or 1


@dataclass
class SegmentConfig:
    _target_: str = "skipbench.tasks.Segment"
    dice_weight: float = 0.0  # loss = cross-entropy + dice_weight * (1 - soft Dice)


@dataclass
class ClassifyConfig:
    _target_: str = "skipbench.tasks.Classify"
    normalization: str = "channel"  # channel: (x - mean) / std per channel; pixel_mean: x - the per-pixel mean (He 2016a)


@dataclass
class ReconstructConfig:
    _target_: str = "skipbench.tasks.Reconstruct"


# ---------------------------------------------------------------- optimizers (partial: params come later)
@dataclass
class SGDConfig:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.05  # learning rate
    momentum: float = 0.9  # in [0, 1)
    nesterov: bool = False  # Nesterov momentum
    weight_decay: float = 0.0  # on conv/linear weights only, unless trainer.weight_decay_on=all
    fused: Optional[bool] = None  # null: torch's one-kernel update on CPU/CUDA (faster than its per-tensor loop)


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    _convert_: str = "all"  # betas as a plain list, so checkpoints hold no omegaconf objects
    lr: float = 1e-3  # learning rate (tuned=<task>_<dataset>: each model's own)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # moving-average factors of gradient and its square
    eps: float = 1e-8  # added to the denominator
    weight_decay: float = 0.0  # never applied to norm weights or biases
    fused: Optional[bool] = None  # null: torch's one-kernel update on CPU/CUDA (~4x faster than its per-tensor loop)


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


@dataclass
class MultiStepScheduleConfig:
    _target_: str = "skipbench.train.schedule.multistep"
    _partial_: bool = True
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # fractions of trainer.max_steps (He et al.: 32k, 48k of 64k)
    gamma: float = 0.1  # lr *= gamma at each milestone


@dataclass
class AugmentConfig:
    """Training-batch augmentation (skipbench/data/augment.py), on the run's device; never at eval."""

    crop_padding: int = 0  # pad by p px (zeros), then a random crop of the original size; 4 in He et al.
    flip: bool = False  # random horizontal flip, probability 1/2


# ---------------------------------------------------------------- trainer and the root
@dataclass
class TrainerConfig:
    # 400: the README's 5-variant sweep fits in 3 minutes on 2 CPU cores even on a slow day, and the long
    # skips lead by 3.2-3.9 dB at step 400 as at 600 (README, 'Speed'); longer: trainer.max_steps=...
    max_steps: int = 400
    batch_size: int = 32  # images per training step (and per eval batch)
    eval_every: int = 100  # steps between evaluations (and checkpoints); also at the end
    log_every: int = 20  # steps between scalar / gradient-norm writes
    device: Device = Device.auto  # auto = cuda when available, else cpu
    num_threads: Optional[int] = None  # torch CPU threads; None = torch's default
    amp: bool = False  # bf16 autocast; on CPU only worth it with native bf16 (AVX512-BF16, AMX): ~1.7x a step here
    channels_last: Optional[bool] = None  # null: on for CPU (oneDNN's convs 1.2-1.3x faster a step here), off on CUDA
    compile: bool = False  # torch.compile the model
    compile_mode: CompileMode = CompileMode.default  # torch.compile's mode; reduce-overhead = CUDA graphs
    grad_clip: Optional[float] = None  # max global gradient norm
    weight_decay_on: str = "weights"  # what optimizer.weight_decay applies to: weights (conv/linear, not norms or biases) or all (the papers' Caffe/Torch code)
    progress: bool = True  # tqdm bar
    # The debug= presets' knobs (configs/debug/, skipbench/train/debug.py):
    overfit_batches: int = 0  # > 0: train on the first N batches over and over, validate on the same images (debug=overfit)
    data_fraction: float = 1.0  # the first fraction of the train and val splits, in (0, 1] (debug=tiny)
    detect_anomaly: bool = False  # autograd anomaly mode: names the op whose backward made a NaN/inf; slow (debug=anomaly)
    profile_steps: int = 0  # > 0: torch.profiler records N steps; Chrome trace in <run>/profile/ for ui.perfetto.dev (debug=profile)


@dataclass
class DiagnosticsConfig:
    grad_norms: bool = True  # per-layer gradient L2 norms, total, first/last ratio (every log_every)
    weight_norms: bool = True  # per-layer weight L2 norms (every log_every)
    update_ratios: bool = True  # per-layer ||w_after - w_before|| / ||w_before|| (every log_every)
    activations: bool = True  # per-block output mean/std on a fixed probe batch (each eval)
    grad_flow: bool = True  # gradient-flow heat map (all logged steps) + grad norm vs depth figures
    figures_every: int = 1000  # steps between grad-flow figures (~0.5 s each to draw); always at the end; 0 = end only
    grad_max: bool = True  # per-layer max |gradient| (z_layer/grad_max/<layer>, every log_every; needs grad_norms)
    dead_after: int = 3  # flag a layer dead after this many log steps of exactly zero gradient (log, health/dead_layers, metrics.json); 0 = off
    histograms: bool = False  # per-layer weight and gradient histograms (TensorBoard's Histograms tab) at figures_every
    images: bool = True  # input / output / target grid (each eval)
    num_images: int = 8  # images in the input / output / target grid


@dataclass
class TrainConfig:
    model: Any = MISSING
    dataset: Any = MISSING
    task: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0  # model init, batch order, noise
    resume: Optional[str] = None  # a run directory (or its checkpoint.pt) to continue; auto = this run's own, if any
    tuned_lr: dict[str, float] = field(default_factory=dict)  # model.name -> lr, from tuned=<task>_<dataset>
    tags: list[str] = field(default_factory=list)  # labels for later filtering (metrics.json, HParams, report --tags)


def model_schemas() -> dict[str, ModelConfig]:
    """``schema/model/<name>`` for every registered variant: ``configs/model/<name>.yaml`` extends it."""
    from .models.registry import MODELS  # imports no torch

    from .models.custom import CUSTOM

    schema = {"encdec": ModelConfig, "mlp": MLPModelConfig, "cifar": CifarModelConfig, "densenet_bc": DenseNetBCConfig,
              "rednet": RedNetConfig}
    return {**{name: schema[v.skeleton](name=name, long_skip=v.long_skip, block=v.block, padding=v.padding,
                                        **dict(v.knobs)) for name, v in MODELS.items()}, CUSTOM: CustomModelConfig()}


SCHEMAS = {
    "model": model_schemas(),
    "dataset": {"shapes": ShapesConfig, "mnist": MnistConfig, "fashion_mnist": FashionMnistConfig,
                "cifar10": Cifar10Config, "folder": FolderConfig, "digits": DigitsConfig},
    "task": {"denoise": DenoiseConfig, "reconstruct": ReconstructConfig, "segment": SegmentConfig,
             "classify": ClassifyConfig},
    "optimizer": {"sgd": SGDConfig, "adam": AdamConfig, "adamw": AdamWConfig},
    "scheduler": {"none": ConstantScheduleConfig, "cosine": CosineScheduleConfig, "multistep": MultiStepScheduleConfig},
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


def instantiate_checked(node: DictConfig, **kwargs: Any) -> Any:
    """``instantiate``, but a user mistake found inside the target (a missing data file, say) stays
    one :class:`ConfigError` line instead of Hydra's "Error in call to target" wrapper."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as ex:
        if isinstance(ex.__cause__, ConfigError):
            raise ex.__cause__ from None
        raise


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def compose_config(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train",
                   hydra: bool = False) -> DictConfig:
    """The config ``skipbench <command> overrides...`` would run, composed in-process (schemas registered,
    the shipped config folder found); ``hydra=True`` keeps the ``hydra`` node, and sets it as the current
    Hydra config so ``${hydra:...}`` (the run folder's name) resolves. Hydra's global state is cleared again."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name=config_name):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=hydra)
    if hydra:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)
    return cfg


def planned_run_dir(cfg: DictConfig) -> Path | None:
    """The folder Hydra would make for a single run of ``cfg`` (composed with ``hydra=True``; its
    ``${now:...}`` resolved once, here), or None where only a real job can resolve it."""
    try:
        return Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).expanduser().absolute()
    except Exception:  # an interpolation only a real job can resolve
        return None


def config_dir() -> Path:
    """The configs shipped inside the wheel, or the checkout's ``configs/`` (editable install)."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "configs"


SEED_LIMIT = 2**32


def require(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value}: {rule}")


def is_custom(model_cfg: DictConfig) -> bool:
    from .models.custom import is_custom as custom

    return custom(model_cfg)


def check_config(cfg: DictConfig) -> None:
    """The rules no constructor or loader owns: the trainer's, optimizer's, schedule's, task's and
    diagnostics' ranges, and the rules spanning several keys. Raises :class:`ConfigError` naming key and rule.

    The model checks its own arguments (:class:`~skipbench.models.EncoderDecoder`), each data set
    loader its own (``skipbench/data/``), and :func:`check_image_size` that model and data fit;
    :func:`skipbench.train.validate.check_runnable` runs them all once per run, before the run folder exists.
    """
    if is_custom(cfg.model) and OmegaConf.is_missing(cfg.model, "target"):
        raise ConfigError("model.target is not set: model=custom trains your own nn.Module; give its import path, "
                          "e.g. model.target=mynet.build (a class or a function returning one)")
    _check_trainer(cfg.trainer, cfg)
    _check_optimizer(cfg)
    _check_task(cfg.task)
    from .data.augment import check_augment

    if cfg.get("augment") is not None:
        check_augment(cfg.augment.crop_padding, cfg.augment.flip)
    d = cfg.dataset
    if "root" in d.keys() and OmegaConf.is_missing(d, "root"):
        raise ConfigError("dataset.root is not set: give the folder of your images, e.g. dataset.root=~/photos")
    require(cfg.diagnostics.figures_every >= 0, "diagnostics.figures_every", cfg.diagnostics.figures_every, "must be >= 0")
    require(cfg.diagnostics.dead_after >= 0, "diagnostics.dead_after", cfg.diagnostics.dead_after, "must be >= 0 (0 = off)")
    require(cfg.diagnostics.num_images >= 1, "diagnostics.num_images", cfg.diagnostics.num_images, "must be >= 1")


def _check_trainer(t: DictConfig, cfg: DictConfig) -> None:
    for key in ("max_steps", "batch_size", "eval_every", "log_every"):
        require(t[key] >= 1, f"trainer.{key}", t[key], "must be an integer >= 1")
    # Seeds feed torch generators (64-bit), multiplied by ~1e6 for per-step and per-epoch streams.
    for key, seed in (("seed", cfg.seed), ("dataset.seed", cfg.dataset.get("seed", 0))):
        require(0 <= seed < SEED_LIMIT, key, seed, f"must be an integer in [0, 2**32 - 1]")
    require(t.num_threads is None or t.num_threads >= 1, "trainer.num_threads", t.num_threads, "must be >= 1 or null")
    require(t.grad_clip is None or t.grad_clip > 0, "trainer.grad_clip", t.grad_clip, "must be > 0 or null")
    require(t.overfit_batches >= 0, "trainer.overfit_batches", t.overfit_batches, "must be >= 0 (0 = off)")
    require(0 < t.data_fraction <= 1, "trainer.data_fraction", t.data_fraction, "must be in (0, 1]")
    require(t.profile_steps >= 0, "trainer.profile_steps", t.profile_steps, "must be >= 0 (0 = off)")
    require(t.profile_steps == 0 or t.profile_steps + 2 <= t.max_steps, "trainer.profile_steps", t.profile_steps,
            f"needs trainer.max_steps >= profile_steps + 2 (one step to wait, one to warm up); it is {t.max_steps}")
    if t.compile:
        compiler = cpp_compiler()
        require(compiler is not None, "trainer.compile", "true", "torch.compile needs a C++ compiler and none was "
                "found (CXX=" + os.environ.get("CXX", "unset") + ", no c++/g++/clang++ on PATH); install one "
                "(e.g. apt install g++) or set trainer.compile=false")
    if str(t.device) == "cuda":
        import torch

        require(torch.cuda.is_available(), "trainer.device", t.device, "no CUDA device is available here; use auto or cpu")


def cpp_compiler() -> str | None:
    """The C++ compiler torch.compile (Inductor) would call: ``$CXX`` if set, else c++, g++ or clang++ on PATH."""
    import shutil

    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"])
    return next((found for name in ("c++", "g++", "clang++") if (found := shutil.which(name))), None)


def _check_optimizer(cfg: DictConfig) -> None:
    """The learning rate (a tuned one must exist for the model), weight decay, momentum and schedule."""
    tuned, opt, sched = cfg.get("tuned_lr") or {}, cfg.optimizer, cfg.scheduler
    if tuned and cfg.model.name not in tuned:  # checked first: optimizer.lr interpolates ${tuned_lr.${model.name}}
        raise ConfigError(f"tuned: no tuned learning rate for model={cfg.model.name}; tuned: {', '.join(tuned)} "
                          "(tune it with scripts/tune_lr.py --models ..., or drop tuned=)")
    require(opt.lr > 0, "optimizer.lr", opt.lr, "must be > 0")
    require(opt.weight_decay >= 0, "optimizer.weight_decay", opt.weight_decay, "must be >= 0")
    if "momentum" in opt:
        require(0 <= opt.momentum < 1, "optimizer.momentum", opt.momentum, "must be in [0, 1)")
    if "betas" in opt:
        betas = list(opt.betas) if OmegaConf.is_list(opt.betas) else opt.betas
        shown = f"[{','.join(map(str, betas))}]" if isinstance(betas, list) else betas
        require(isinstance(betas, list) and len(betas) == 2 and all(0 <= b < 1 for b in betas), "optimizer.betas",
                shown, "must be two numbers in [0, 1), e.g. [0.9,0.999]")
    if "warmup_steps" in sched:
        require(sched.warmup_steps >= 0, "scheduler.warmup_steps", sched.warmup_steps, "must be >= 0")
        require(sched.warmup_steps < cfg.trainer.max_steps, "scheduler.warmup_steps", sched.warmup_steps,
                f"must be < trainer.max_steps ({cfg.trainer.max_steps}), else the lr never leaves its warmup")
        require(0 <= sched.min_lr_ratio <= 1, "scheduler.min_lr_ratio", sched.min_lr_ratio, "must be in [0, 1]")
    if "milestones" in sched:
        ms = list(sched.milestones)
        require(all(0 < m < 1 for m in ms) and ms == sorted(set(ms)), "scheduler.milestones", ms,
                "must be increasing fractions of trainer.max_steps in (0, 1), e.g. [0.5, 0.75]")
        require(0 < sched.gamma <= 1, "scheduler.gamma", sched.gamma, "must be in (0, 1]")
    decay_on = cfg.trainer.get("weight_decay_on", "weights")
    require(decay_on in ("weights", "all"), "trainer.weight_decay_on", decay_on, "unknown; known: weights, all")


def _check_task(task: DictConfig) -> None:
    if "sigma" in task:
        require(task.sigma >= 0, "task.sigma", task.sigma, "must be >= 0")
        require(0 <= task.amount <= 1, "task.amount", task.amount, "must be in [0, 1]")
    if "normalization" in task:
        require(task.normalization in ("channel", "pixel_mean"), "task.normalization", task.normalization,
                "unknown; known: channel, pixel_mean")
    if "dice_weight" in task:
        require(task.dice_weight >= 0, "task.dice_weight", task.dice_weight, "must be >= 0")


def check_image_size(cfg: DictConfig, size: int) -> None:
    """The model must fit the images (``size`` px, the smaller side): ``2**depth`` pixels, more with valid convs."""
    m = cfg.model
    if is_custom(m):  # model=custom: its own forward is checked on a sample (validate.check_model)
        return
    if "depth" not in m or "blocks_per_level" not in m:  # not the conv skeleton: the MLP area-averages any image,
        return  # the papers' nets take any size (RED-Net keeps it, the CIFAR nets and DenseNet-BC pool globally)
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
