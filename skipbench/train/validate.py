"""What a single run checks before its run folder exists.

``check_runnable`` finds every user mistake that can be found before training (config ranges, data
files, image size, batch vs split, task x data set, model arguments, a checkpoint that does not fit)
while nothing has been written; it is the one validation of a run (the CLI runs it before Hydra makes
the run folder, :func:`~skipbench.train.loop.train` before it builds). The data it loads stays in
:mod:`~skipbench.train.data_cache` for the run, so nothing is loaded twice.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from omegaconf import DictConfig, OmegaConf

from ..errors import CheckpointError, ConfigError
from ..run_folder import MODEL_STATE, MUST_MATCH, SAVED_CONFIG, TRAINING_STATE, flat_items
from .data_cache import forget_loaded, load_data

if TYPE_CHECKING:
    import torch

    from ..data import ImageData


def check_runnable(cfg: DictConfig, resume: str | None) -> dict[str, Any] | None:
    """Raise a one-line :class:`~skipbench.errors.SkipbenchError` for any mistake found without training.

    The one validation of a run: the config's own rules (:func:`~skipbench.config.check_config`), then
    the loader, the task, the model (built on the meta device: no memory, no weights) and the sampler
    each check their own arguments, then model and images must fit. ``resume`` (``cfg.resume`` resolved:
    a run folder or checkpoint, or None) is checked too; returns the checkpoint's state (``None`` without).
    """
    from ..config import check_config, check_image_size, instantiate_checked
    from ..data import EpochSampler
    from ..models import get_variant
    from ..models.blocks import block_class
    from ..models.merges import merge_class

    from ..models.custom import is_custom, load_target

    check_config(cfg)
    custom = is_custom(cfg.model)  # model=custom: the user's nn.Module
    if custom:
        load_target(cfg.model.target)  # importable, before any data is read
    else:
        get_variant(cfg.model.name)  # "unknown model 'x'; known: ..."
        with model_keys_named(cfg):  # skip names before any data is read (a real data set takes seconds)
            block_class(cfg.model.block)
            merge_class(cfg.model.long_skip, cfg.model.padding)
    from .debug import trim

    data = load_data(cfg)  # kept for the run, so nothing is loaded twice
    try:
        data = trim(data, cfg.trainer)  # what the run trains on (debug= presets: a few batches)
        EpochSampler(len(data.train), cfg.trainer.batch_size, cfg.seed)  # refuses a batch larger than the split
        task = instantiate_checked(cfg.task)
        task.setup(data)  # task x data set: e.g. segment needs masks, classify needs labels
        model = check_model(cfg, data, task)
        check_image_size(cfg, min(data.image_size))
        return check_resume(cfg, resume, model) if resume else None
    except BaseException:
        forget_loaded()  # a refused run never uses the kept data: let it go
        raise


def check_model(cfg: DictConfig, data: ImageData, task: Any) -> torch.nn.Module:
    """The model built as the run builds it, on the meta device; its own argument checks name the key
    (``model.width=0: must be an integer >= 1``)."""
    import torch

    from ..config import instantiate_checked

    with model_keys_named(cfg), torch.random.fork_rng(devices=[]), torch.device("meta"):  # no memory, no RNG draws
        model = instantiate_checked(cfg.model, in_channels=data.channels, out_channels=task.out_channels,
                                    head=task.head)
        from ..models.custom import check_output, is_custom

        if is_custom(cfg.model):  # the user's model: its output must be what the task scores
            check_output(model, torch.empty(1, data.channels, *data.image_size), task.out_channels, task.head,
                         cfg.model.target)
    check_model_fits(cfg, model)
    return model


MODEL_COPIES = 4  # weights, gradients and an optimizer's two moments (Adam), float32 each


def check_model_fits(cfg: DictConfig, model: torch.nn.Module) -> None:
    """The model's weights, gradients and optimizer state must fit the device's memory (the GPU's, or this
    machine's): ``model.width=100000`` is refused in a second, not after minutes of swapping."""
    import torch

    from ..limits import check_fits
    from .context import resolve_device

    params = sum(p.numel() for p in model.parameters())
    try:
        device = resolve_device(str(cfg.trainer.device))
    except (RuntimeError, ValueError):  # named wrong: said in its own line later; count this machine's memory
        device = torch.device("cpu")
    limit, where = None, "memory"
    if device.type == "cuda" and torch.cuda.is_available():
        limit, where = torch.cuda.get_device_properties(device).total_memory, f"memory on {device}"
    sizes = [f"model.{k}={cfg.model[k]}" for k in ("width", "depth") if cfg.model.get(k) is not None]
    shown = f" ({', '.join(sizes)})" if sizes else ""
    check_fits(f"model {cfg.model.get('name', '?')}{shown}: {params:,} parameters with their gradients and optimizer "
               "state", params * 4 * MODEL_COPIES, f"lower {' or '.join(s.split('=')[0] for s in sizes) or 'its size'}",
               limit=limit, where=where)


@contextmanager
def model_keys_named(cfg: DictConfig) -> Iterator[None]:
    """A model part's error names its argument (``block=x: ...``); give it the config key (``model.block=x``)."""
    try:
        yield
    except ConfigError as ex:
        if str(ex).split("=", 1)[0] in cfg.model:
            raise ConfigError(f"model.{ex}") from None
        raise


def check_resume(cfg: DictConfig, resume: str, model: torch.nn.Module) -> dict[str, Any]:
    """The checkpoint must be whole, ours, and fit this config's ``model``; says what differs if not."""
    from .checkpoint import find_checkpoint, load_checkpoint

    path = find_checkpoint(resume)
    state = load_checkpoint(path)
    lacking = [k for k in TRAINING_STATE if not isinstance(state.get(k), dict)]
    if lacking:
        raise CheckpointError(f"{path}: not a training checkpoint of skipbench (no {', '.join(lacking)} state in it)")
    saved = state.get(SAVED_CONFIG)
    if isinstance(saved, dict):
        mine = dict(flat_items(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), builders=True))
        theirs = dict(flat_items(saved, builders=True))
        for key in sorted(set(mine) | set(theirs)):
            if key.startswith(MUST_MATCH) and mine.get(key) != theirs.get(key):
                raise CheckpointError(f"resume={resume}: the checkpoint has {key}={theirs.get(key)}, this config "
                                      f"{mine.get(key)}; a resume cannot change the architecture, task or data shape")
    problem = state_dict_mismatch(state[MODEL_STATE], model.state_dict())
    if problem:
        raise CheckpointError(f"resume={resume}: the checkpoint does not fit model {cfg.model.name}: {problem}")
    return state


def state_dict_mismatch(theirs: Any, mine: dict[str, Any]) -> str | None:
    """What differs between a checkpoint's ``model`` entry and a model's state dict, in one line (or None)."""
    if not isinstance(theirs, dict):
        return f"its model entry is a {type(theirs).__name__}, not a state dict"
    shape = lambda t: list(getattr(t, "shape", [])) or "(no tensor)"  # noqa: E731
    missing = [k for k in mine if k not in theirs]
    extra = [k for k in theirs if k not in mine]
    differ = [k for k in mine if k in theirs and shape(theirs[k]) != shape(mine[k])]
    parts = []
    if differ:
        k = differ[0]
        parts.append(f"{len(differ)} tensor shape(s) differ (first: {k} is {shape(theirs[k])} in the checkpoint, "
                     f"{shape(mine[k])} here)")
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing from the checkpoint (first: {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} tensor(s) this model does not have (first: {extra[0]})")
    return "; ".join(parts) or None
