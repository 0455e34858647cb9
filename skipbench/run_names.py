"""Short run names, keyed by the job's overrides: a sweep job's folder names only the overrides that vary.

``configs/train.yaml`` names a sweep job ``<task>_<model>[_<key=value,...>]`` through the
``skipbench_varying`` resolver: the ``key=value`` part lists this job's overrides of the keys the
sweep varies (read from the sweep's ``multirun.yaml``, which Hydra's basic sweeper writes before
the first job), so ``-m model=a,b trainer.max_steps=200`` gives ``denoise_a``, not
``model=a,trainer.max_steps=200``. Where the sweep's overrides cannot be read (another sweeper)
every override is listed, as Hydra's ``override_dirname`` would.

No job number in the name: a sweep run again (or grown by a seed, a model) into the same folder must
find each old job in its old folder. ``skipbench_job_dir`` does that: a folder already in the sweep whose
``.hydra/overrides.yaml`` names the same job (:func:`same_job`) is this job's folder, whatever its name.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from omegaconf import OmegaConf

from .run_folder import CONFIG, HYDRA_CONFIG, OVERRIDES, UnreadableFile, read_yaml, sweep_params, sweep_task_overrides

ALWAYS_SHOWN = ("model", "task")  # already in the name


@lru_cache(maxsize=8)
def sweep_keys(sweep_dir: str) -> frozenset[str] | None:
    """Keys a sweep varies (``model``, ``seed``, ``optimizer.lr``), or None if unknown."""
    params = sweep_params(Path(sweep_dir))
    if params is None:  # no multirun.yaml (another sweeper), or one we cannot read: show everything
        return None
    return parse_sweep_keys(params, sweep_task_overrides(Path(sweep_dir)))


def parse_sweep_keys(params: dict[str, str], task_overrides: Sequence[str]) -> frozenset[str] | None:
    """The keys that ``hydra.sweeper.params`` and a sweep's task overrides sweep; None if unparsable."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        args = [f"{k}={v}" for k, v in params.items()] + list(task_overrides)
        overrides = OverridesParser.create().parse_overrides(args)
    except Exception:  # overrides we cannot parse: show everything
        return None
    return frozenset(o.key_or_group for o in overrides if o.is_sweep_override())


def varying_overrides(sweep_dir: str, overrides: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """``"_seed=1,optimizer.lr=0.01"``: this job's overrides of the keys the sweep varies ("" if none)."""
    keys = sweep_keys(str(sweep_dir))
    items = []
    for item in overrides:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if key in ALWAYS_SHOWN or key in exclude or (keys is not None and key not in keys):
            continue
        items.append(f"{key}={value}")
    return "_" + ",".join(items) if items else ""


# Settings that never make two jobs different (where the job runs, how it reports, how it was started).
FREE_KEYS = ("resume", "trainer.progress", "trainer.device", "trainer.num_threads")


def job_key(overrides: Sequence[str]) -> dict[str, str]:
    """``{"model": "resnet", "seed": "1"}``: what makes a job this job -- its task overrides, less
    :data:`FREE_KEYS`."""
    out = {}
    for item in overrides:
        key, eq, value = str(item).partition("=")
        key = key.lstrip("+~")
        if eq and key not in FREE_KEYS and not key.startswith("hydra"):
            out[key] = value
    return out


def _value(text: Any) -> Any:
    """An override's value as YAML reads it (``1e-3`` and ``0.001`` alike), for comparing."""
    import yaml
    from omegaconf._utils import get_yaml_loader

    try:
        return yaml.load(str(text), Loader=get_yaml_loader())
    except yaml.YAMLError:
        return str(text)


def setting(cfg: Any, key: str) -> Any:
    """``key``'s value in a config (plain dict or DictConfig, with its ``hydra`` node): a group's choice
    (``model`` -> ``resnet``) from ``hydra.runtime.choices``, else the dotted key's value; None if absent."""
    if OmegaConf.is_config(cfg):
        cfg = OmegaConf.to_container(cfg, resolve=False)
    choices = ((cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {} if isinstance(cfg, dict) else {}
    if key in choices:
        return choices[key]
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _saved_job(folder: Path) -> dict[str, Any] | None:
    """A job folder's config (task keys and ``hydra.runtime.choices``) as saved, or None."""
    try:
        cfg = read_yaml(folder / CONFIG)
        hydra = read_yaml(folder / HYDRA_CONFIG)
    except UnreadableFile:
        return None
    if not isinstance(cfg, dict):
        return None
    return {**cfg, "hydra": (hydra or {}).get("hydra", {}) if isinstance(hydra, dict) else {}}


def same_job(mine: dict[str, str], cfg: Any, folder: Path, theirs: dict[str, str]) -> bool:
    """Is the job in ``folder`` (overrides ``theirs``) the job with overrides ``mine`` and config ``cfg``?

    The keys both name must agree; a key only one of them names is compared with the other's config
    (a sweep that starts sweeping ``seed=0,1`` finds its ``seed=0`` jobs in folders that ran with the
    default seed 0)."""
    if any(_value(mine[k]) != _value(theirs[k]) for k in mine.keys() & theirs.keys()):
        return False
    saved = _saved_job(folder) if mine.keys() - theirs.keys() else {}
    if saved is None:
        return False
    return (all(_value(mine[k]) == setting(saved, k) for k in mine.keys() - theirs.keys())
            and all(_value(theirs[k]) == setting(cfg, k) for k in theirs.keys() - mine.keys()))


def job_folders(sweep_dir: Path) -> list[tuple[Path, dict[str, str]]]:
    """The job folders of a sweep with the :func:`job_key` of each (those with a readable overrides file)."""
    out = []
    if not sweep_dir.is_dir():
        return out
    for folder in sorted(sweep_dir.iterdir()):
        try:
            saved = read_yaml(folder / OVERRIDES) if folder.is_dir() else None
        except UnreadableFile:
            continue
        if isinstance(saved, list):
            out.append((folder, job_key(saved)))
    return out


def job_dir_name(sweep_dir: str, name: str, overrides: Sequence[str], cfg: Any = None) -> str:
    """The folder (under ``sweep_dir``) of the job with these overrides: the folder that already holds it
    (a sweep run again or grown), else ``name``; ``name~2``, ``name~3``... when ``name`` is another job's."""
    sweep = Path(sweep_dir)
    mine = job_key(overrides)
    folders = job_folders(sweep)
    for folder, theirs in folders:
        if same_job(mine, cfg, folder, theirs):
            return folder.name
    taken = {p.name for p in sweep.iterdir()} if sweep.is_dir() else set()
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}~{n}"
    return candidate


def output_subdir(output_dir: str) -> str | None:
    """``hydra.output_subdir``: ``.hydra`` for a new job folder; None (Hydra writes nothing) for a folder
    that already holds a job's config -- a finished job is not rewritten, a resumed one keeps its own."""
    return None if (Path(output_dir) / CONFIG).exists() else ".hydra"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("model_label"):  # model=custom: the run's label from model.target
        from .models.custom import label

        OmegaConf.register_new_resolver("model_label", label)
    if not OmegaConf.has_resolver("skipbench_varying"):
        OmegaConf.register_new_resolver("skipbench_varying", lambda d, o, e=(): varying_overrides(d, o, _list(e)))
    if not OmegaConf.has_resolver("skipbench_job_dir"):
        OmegaConf.register_new_resolver(
            "skipbench_job_dir", lambda d, name, o, *, _root_: job_dir_name(str(d), str(name), _list(o), _root_))
    if not OmegaConf.has_resolver("skipbench_output_subdir"):
        OmegaConf.register_new_resolver("skipbench_output_subdir", lambda d: output_subdir(str(d)))


def _list(v: Any) -> list[str]:
    return [str(x) for x in v] if v is not None else []


register_resolvers()  # at import: a joblib / submitit worker resolves the job's folder name too
