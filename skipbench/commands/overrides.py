"""What a command line may say, checked before Hydra acts on it, and what a resume re-applies.

``~`` in a value is expanded (the shell leaves it alone in ``key=~/x``); an added ``+key`` must be a
key of skipbench's schema (Hydra would accept a typo and ignore it); ``resume=RUN_DIR`` re-applies
that run's own overrides, each checked against the schema first, since a run folder may come from
someone else.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from ..config import config_dir
from ..errors import ConfigError, RunFolderError
from ..run_folder import MULTIRUN, OVERRIDES, UnreadableFile, read_multirun, read_yaml
from .exits import one_line

RUN_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir")
OPEN_NODES = ("model.kwargs",)  # model=custom: keyword arguments for the user's target, any names


def override_key(override: str) -> str:
    """``+trainer.max_steps=5`` -> ``trainer.max_steps``."""
    return override.split("=", 1)[0].lstrip("+~")


def quote(value: str) -> str:
    """A value quoted for Hydra's override grammar (spaces, commas and quotes survive)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_overrides(args: list[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(args)


def expand_home(args: list[str]) -> list[str]:
    """``dataset.root=~/data``: the shell leaves the ``~`` alone (``dataset.root`` is no variable name)
    and Hydra's override grammar rejects it, so expand it here, quoted, as a user expects."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and not key.startswith("-") and value.startswith("~") and "," not in value:
            a = f"{key}={quote(os.path.expanduser(value))}"
        out.append(a)
    return out


# Hydra's upstream launcher names (hydra-submitit-launcher's, used by lightning-hydra-template) -> skipbench's
# launchers built on them, which add the partition check, resume=auto on requeue and every job accounted for.
LAUNCHER_ALIASES = {"submitit_slurm": "slurm", "submitit_local": "local"}


def launcher_aliases(args: list[str]) -> list[str]:
    """``hydra/launcher=submitit_slurm`` -> ``hydra/launcher=slurm`` (and ``submitit_local`` -> ``local``)."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key.lstrip("+") == "hydra/launcher" and value in LAUNCHER_ALIASES:
            a = f"{key}={LAUNCHER_ALIASES[value]}"
        out.append(a)
    return out


def check_run_dirs(args: list[str]) -> None:
    """``hydra.run.dir=`` (empty) would make Hydra write into the current folder: refuse it."""
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key.lstrip("+") in RUN_DIR_KEYS and not value.strip(" '\""):
            raise RunFolderError(f"{key} is empty: give a folder (e.g. {key}=outputs/my_run), or leave it out "
                                 "for the default under outputs/")


def check_added_keys(cfg, args: list[str]) -> None:
    """``+trainer.max_step=100``: Hydra adds ``+`` keys with the struct flag off, so a typo would be
    accepted and ignored. Only keys of skipbench's schema may be added (or forced with ``++``)."""
    from omegaconf import OmegaConf

    for override in parse_overrides(args):
        key = override.key_or_group
        if override.is_hydra_override() or not override.is_add() and not override.is_force_add() \
                or "/" in key or (config_dir() / key).is_dir():  # a config group: Hydra checks its options
            continue
        parent_key, _, leaf = key.rpartition(".")
        if parent_key in OPEN_NODES:  # free keyword arguments (the user's model's)
            continue
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        schema = OmegaConf.get_type(parent) if OmegaConf.is_config(parent) else None
        known = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []
        if leaf not in known or leaf.startswith("_"):
            shown = ", ".join(k for k in known if not k.startswith("_")) or "none (this node takes no new keys)"
            raise ConfigError(f"unknown key '{key}' (added with '+'); known: {shown}")


def with_resume(args: list[str]) -> list[str]:
    """``resume=RUN_DIR``: re-apply that run's overrides (yours win) and write into the same folder.

    A run folder may come from someone else: only overrides of skipbench's own config keys with plain
    values are re-applied (never ``_target_``, ``hydra.*``, ``+``/``++``/``~`` or interpolations, which
    could make ``instantiate`` call anything); anything else is refused, naming it.
    """
    resume = [a for a in args if override_key(a) == "resume"]
    if not resume:
        return args
    value = resume[-1].split("=", 1)[1].strip("'\"")
    if value == "auto":  # this run folder's own checkpoint, found at the start of training
        return args
    path = Path(value).expanduser().resolve()
    run_dir = path if path.is_dir() else path.parent
    saved = run_dir / OVERRIDES
    if not saved.is_file():
        raise ConfigError(f"resume={value}: not a skipbench run folder (no {OVERRIDES} there)")
    from ..train.checkpoint import find_checkpoint

    find_checkpoint(str(path))  # fail here, in one line, before Hydra touches the folder
    rest = [a for a in args if override_key(a) != "resume"]
    mine = {override_key(a) for a in rest}
    old = [o for o in trusted_overrides(saved) if override_key(o) not in mine | {"resume"}]
    return [*old, *rest, f"resume={quote(str(path))}", f"hydra.run.dir={quote(str(run_dir))}"]


def resume_sweep(args: list[str]) -> list[str] | None:
    """``resume=SWEEP_DIR`` (with or without ``-m``): that sweep again, into its folder, with its own
    overrides (yours win, and may add values: ``seed=0,1,2,3``): finished jobs are reused, interrupted
    ones resumed, missing ones run. None when ``resume`` names no sweep folder.

    A sweep folder may come from someone else: its task overrides are checked as a run's are (sweeps
    allowed), and of its Hydra overrides only the launcher's choice and plain launcher settings are re-applied.
    """
    resume = [a for a in args if override_key(a) == "resume"]
    if not resume:
        return None
    value = resume[-1].split("=", 1)[1].strip("'\"")
    path = Path(value).expanduser().resolve()
    if not (path / MULTIRUN).is_file() or (path / OVERRIDES).is_file():
        return None
    saved = read_multirun(path)
    hydra = saved.get("hydra") if isinstance(saved, dict) else None
    overrides = hydra.get("overrides") if isinstance(hydra, dict) else None
    if not isinstance(overrides, dict):
        raise RunFolderError(f"resume={value}: {path / MULTIRUN} is not a sweep's config (no hydra.overrides)")
    source = path / MULTIRUN
    task = trusted_lines(overrides.get("task") or [], source, sweeps=True)
    launch = trusted_launcher(overrides.get("hydra") or [], source)
    rest = [a for a in args if override_key(a) != "resume" and a not in ("-m", "--multirun")]
    mine = {override_key(a) for a in rest}
    old = [o for o in (*launch, *task) if override_key(o) not in mine]
    return ["-m", *old, *rest, f"hydra.sweep.dir={quote(str(path))}"]


def trusted_launcher(lines: list, source: Path) -> list[str]:
    """A sweep's Hydra overrides worth re-applying: ``hydra/launcher=NAME`` and ``hydra.launcher.KEY=VALUE``
    (plain values); where the sweep ran (``hydra.sweep.dir``, ``hydra.run.dir``) is left out, anything
    else refused in one line."""
    out = []
    for line in lines:
        line = str(line)
        key, _, val = line.partition("=")
        key = key.lstrip("+")
        if key in (*RUN_DIR_KEYS, "hydra.mode"):  # where and how it ran: -m and the folder are given anew
            continue
        plain = "${" not in val and not any(p.startswith("_") for p in key.split("."))
        if key == "hydra/launcher" and re.fullmatch(r"[A-Za-z0-9_\-]+", val) or \
                key.startswith("hydra.launcher.") and plain:
            out.append(line)
        else:
            raise RunFolderError(f"{source}: refusing to re-apply '{one_line(line, 120)}': only the launcher "
                                 "(hydra/launcher=..., hydra.launcher.KEY=...) is re-applied on resume")
    return out


def trusted_overrides(saved: Path) -> list[str]:
    """The overrides in a run's ``.hydra/overrides.yaml``, each checked against skipbench's schema."""
    try:
        lines = read_yaml(saved)
    except UnreadableFile as ex:
        raise RunFolderError(one_line(str(ex), 300)) from None
    return trusted_lines(lines, saved)


def trusted_lines(lines, saved: Path, sweeps: bool = False) -> list[str]:
    """Overrides read from a run (or, with ``sweeps``, a sweep) folder, each checked against skipbench's schema."""
    from hydra.errors import HydraException

    from ..config import SCHEMAS, DiagnosticsConfig, TrainConfig, TrainerConfig

    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise RunFolderError(f"{saved}: not a list of overrides")
    names = lambda *classes: {f.name for c in classes for f in dataclasses.fields(c)}  # noqa: E731
    fields = names(TrainConfig)
    known = {"trainer": names(TrainerConfig), "diagnostics": names(DiagnosticsConfig),
             **{group: names(*options.values()) for group, options in SCHEMAS.items()}}  # section -> its keys
    groups = [g for g in (*SCHEMAS, "experiment") if (config_dir() / g).is_dir()]
    for line in lines:
        key = override_key(line)
        refuse = f"{saved}: refusing to re-apply '{one_line(line, 120)}'"
        try:
            (override,) = parse_overrides([line])
        except HydraException:
            raise RunFolderError(f"{refuse}: not a valid override") from None
        if key == "resume":
            continue
        if override.is_hydra_override() or key.startswith("hydra"):
            raise RunFolderError(f"{refuse}: hydra.* settings are not re-applied on resume (key {key})")
        swept = override.is_sweep_override()
        if not line.startswith(key) or override.package or swept and not sweeps:
            raise RunFolderError(f"{refuse}: only plain KEY=VALUE overrides are re-applied (not +, ++, ~, @ or sweeps)")
        parts = key.split(".")
        if any(p.startswith("_") for p in parts):
            raise RunFolderError(f"{refuse}: key {key} is not a setting (no _target_, _args_, _partial_ ...)")
        if "${" in line.split("=", 1)[-1]:
            raise RunFolderError(f"{refuse}: interpolations (${{...}}) are not re-applied")
        if len(parts) == 1 and key in groups:
            try:
                choices = list(override.sweep_string_iterator()) if swept else [str(override.value())]
            except Exception:  # a range or glob of a config group: no sweep of ours
                choices = [""]
            ok = all(re.fullmatch(r"[A-Za-z0-9_\-]+", c) and (config_dir() / key / f"{c}.yaml").is_file()
                     for c in choices)
        elif len(parts) == 1:
            ok = key in fields and key not in known and key not in groups
        else:
            ok = len(parts) == 2 and parts[1] in known.get(parts[0], set())
        if not ok:
            raise RunFolderError(f"{refuse}: {key} is not a skipbench config key")
    return lines
