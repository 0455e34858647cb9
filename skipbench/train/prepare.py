"""What a single run checks before its run folder exists, and the run folder's own protection.

``check_runnable`` finds every user mistake that can be found before training (config ranges, data
files, image size, batch vs split, task x data set, model arguments, a checkpoint that does not fit)
while nothing has been written; it is the one validation of a run (the CLI runs it before Hydra makes
the run folder, :func:`~skipbench.train.loop.train` when called without it). The data it loads is
kept for the run, so nothing is loaded twice. ``RunFolder`` holds an
exclusive lock on the folder for the process's lifetime (released by the kernel if the process dies,
so kill -9 leaves no stale lock) and removes the folder again if a failure leaves it empty.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from omegaconf import DictConfig, OmegaConf

from ..errors import CheckpointError, ConfigError, RunFolderError
from ..run_folder import CHECKPOINT, HYDRA_DIR, HYDRA_LOG, METRICS, flat_items

if TYPE_CHECKING:
    import torch

    from ..data import ImageData

# Checkpoint and config must agree on these (architecture, task, data shape); the rest (length,
# learning rate, logging) may change on resume.
MUST_MATCH = ("model.", "task._target_", "dataset._target_", "dataset.size", "dataset.channels", "dataset.crop",
              "optimizer._target_", "scheduler._target_")


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


# The last data set loaded in this process: checking a run and running it load it once, and so do the
# jobs of an in-process sweep that share the data set (the shapes data take 0.4-0.6 s to draw; the loop
# never writes into a data set's tensors). Kept with the run seed and the torch RNG state after loading
# when loading drew from that RNG, so a reused data set leaves the RNG exactly as a fresh load would.
_LOADED: dict[str, tuple[ImageData, int | None, torch.Tensor]] = {}


def load_data(cfg: DictConfig) -> ImageData:
    """The data set, seeded as the run seeds it (the torch RNG is left as a fresh load leaves it)."""
    import torch

    key = OmegaConf.to_yaml(cfg.dataset)
    if key in _LOADED:
        data, drew_at_seed, rng = _LOADED[key]
        if drew_at_seed is None:  # loading drew nothing from the RNG: any run seed may reuse it
            torch.manual_seed(cfg.seed)
            return data
        if drew_at_seed == cfg.seed:
            torch.set_rng_state(rng)
            return data
    _LOADED.clear()  # one data set at a time: a sweep over data sets must not hold them all
    torch.manual_seed(cfg.seed)
    seeded = torch.get_rng_state()
    data = instantiate_checked(cfg.dataset)
    rng = torch.get_rng_state()
    _LOADED[key] = data, None if torch.equal(rng, seeded) else cfg.seed, rng
    return data


def forget_loaded() -> None:
    """Drop the kept data set (a refused run; the end of a command)."""
    _LOADED.clear()


def check_runnable(cfg: DictConfig, resume: str | None) -> dict[str, Any] | None:
    """Raise a one-line :class:`~skipbench.errors.SkipbenchError` for any mistake found without training.

    The one validation of a run: the config's own rules (:func:`~skipbench.config.check_config`), then
    the loader, the task, the model (built on the meta device: no memory, no weights) and the sampler
    each check their own arguments, then model and images must fit. ``resume`` (``cfg.resume`` resolved:
    a run folder or checkpoint, or None) is checked too; returns the checkpoint's state (``None`` without).
    """
    from hydra.utils import instantiate

    from ..config import check_config, check_image_size
    from ..data import EpochSampler
    from ..models import get_variant
    from ..models.blocks import block_class
    from ..models.merges import merge_class

    check_config(cfg)
    get_variant(cfg.model.name)  # "unknown model 'x'; known: ..."
    with model_keys_named(cfg):  # skip names before any data is read (a real data set takes seconds)
        block_class(cfg.model.block)
        merge_class(cfg.model.long_skip, cfg.model.padding)
    data = load_data(cfg)  # kept for the run, so nothing is loaded twice
    try:
        EpochSampler(len(data.train), cfg.trainer.batch_size, cfg.seed)  # refuses a batch larger than the split
        task = instantiate(cfg.task)
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

    with model_keys_named(cfg), torch.random.fork_rng(devices=[]), torch.device("meta"):  # no memory, no RNG draws
        return instantiate_checked(cfg.model, in_channels=data.channels, out_channels=task.out_channels,
                                   head=task.head)


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
    lacking = [k for k in ("optimizer", "scheduler") if not isinstance(state.get(k), dict)]
    if lacking:
        raise CheckpointError(f"{path}: not a training checkpoint of skipbench (no {', '.join(lacking)} state in it)")
    saved = state.get("config")
    if isinstance(saved, dict):
        mine = dict(flat_items(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), builders=True))
        theirs = dict(flat_items(saved, builders=True))
        for key in sorted(set(mine) | set(theirs)):
            if key.startswith(MUST_MATCH) and mine.get(key) != theirs.get(key):
                raise CheckpointError(f"resume={resume}: the checkpoint has {key}={theirs.get(key)}, this config "
                                      f"{mine.get(key)}; a resume cannot change the architecture, task or data shape")
    problem = state_dict_mismatch(state["model"], model.state_dict())
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


# ---------------------------------------------------------------- the run folder
HYDRA_ONLY = {HYDRA_DIR, HYDRA_LOG}  # what Hydra writes before our task runs


@dataclass
class RunFolder:
    """A run folder this process holds: locked, and removed again if a failure leaves it empty."""

    path: Path
    resume: bool
    created: list[Path] = field(default_factory=list)  # folders this process made, deepest first
    fd: int | None = None

    def lock(self) -> None:
        """Exclusive, non-blocking ``flock`` on the folder itself: no lock file, nothing stale after kill -9."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunFolderError(f"{self.path}: another skipbench run is using this run folder; wait for it to "
                                 "finish or choose another hydra.run.dir") from None
        self.fd = fd
        _HELD[str(self.path)] = self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None
        _HELD.pop(str(self.path), None)

    def is_orphan(self) -> bool:
        """Nothing in it but what Hydra writes before the run starts."""
        return self.path.is_dir() and all(p.name in HYDRA_ONLY for p in self.path.iterdir())

    def abandon(self, status: str, error: str) -> None:
        """After a failure: remove the folder if it holds nothing of a run, else mark it failed.

        A resumed folder is left alone: it was checked before anything was written into it.
        """
        if self.resume or not self.path.is_dir():
            return
        try:
            if self.is_orphan():
                shutil.rmtree(self.path)
                for parent in self.created[1:]:
                    parent.rmdir()  # only folders this run made, and only while empty
            elif not (self.path / METRICS).exists():
                from ..run_folder import write_json

                write_json(self.path / METRICS, {"status": status, "error": error})
        except OSError:
            pass  # a full or read-only disk: nothing more to do, the error line has been printed


_HELD: dict[str, RunFolder] = {}


def claim_run_folder(run_dir: Path, resume: bool) -> RunFolder:
    """Make (or, on resume, open) the run folder and lock it; refuse a read-only, busy or used one."""
    run_dir = Path(run_dir).absolute()
    try:
        return _claim(run_dir, resume)
    except OSError as ex:  # a name too long for the file system, say
        raise RunFolderError(f"hydra.run.dir={run_dir}: cannot use it ({ex.strerror or ex})") from None


def _claim(run_dir: Path, resume: bool) -> RunFolder:
    if str(run_dir) in _HELD:
        return _HELD[str(run_dir)]
    if resume:
        if not os.access(run_dir, os.W_OK):
            raise RunFolderError(f"{run_dir}: the run folder is read-only; a resume must write into it "
                                 "(copy it somewhere writable and resume the copy)")
    else:
        if run_dir.is_dir() and any((run_dir / name).exists() for name in (CHECKPOINT, METRICS)):
            raise RunFolderError(f"hydra.run.dir={run_dir}: already holds a run; continue it with resume={run_dir} "
                                 "or choose another folder")
        existing = next(p for p in [run_dir, *run_dir.parents] if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise RunFolderError(f"hydra.run.dir={run_dir}: cannot create it, {existing} is "
                                 f"{'not a folder' if not existing.is_dir() else 'read-only'}; "
                                 "choose a writable folder with hydra.run.dir=...")
    folder = RunFolder(run_dir, resume)
    folder.created = [p for p in [run_dir, *run_dir.parents] if not p.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise RunFolderError(f"hydra.run.dir={run_dir}: cannot create it ({ex.strerror or ex})") from None
    try:
        folder.lock()
    except RunFolderError:
        folder.created = []  # someone else's folder now: never remove it
        raise
    return folder


def held_folders() -> list[RunFolder]:
    return list(_HELD.values())
