"""``skipbench analyze lesion|landscape RUN_FOLDER [KEY=VALUE ...] [-m] [--cfg]``.

``RUN_FOLDER`` is one finished run, or (``-m``, or any folder without a checkpoint of its own) a sweep:
every run below it with a checkpoint is analysed in turn and a one-line summary printed per run.
Overrides are Hydra-style dotted keys of :class:`skipbench.analyze.run.AnalyzeConfig`
(``lesion.draws=3``, ``landscape.grid=11``); ``--cfg`` prints the composed knobs and exits.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ConfigError
from ..run_folder import CHECKPOINT

LIST_KNOBS = ("lesion.blocks",)  # the knobs of AnalyzeConfig that hold a list

USAGE = """usage: skipbench analyze {lesion,landscape} RUN_FOLDER [KEY=VALUE ...] [-m] [--cfg]

  lesion     delete blocks of the trained model (each alone; k random ones; each long skip): lesion.json
  landscape  filter-normalised 1-d and 2-d loss slices, interpolation from init, Hessian extremes: landscape.json

RUN_FOLDER: a finished run, or a sweep folder (-m): every run below it with a checkpoint.
Knobs (skipbench analyze lesion --cfg lists them): lesion.k_max=8 lesion.draws=5 landscape.grid=21 ...
"""


def compose(kind: str, overrides: list[str]):
    """The knobs with ``overrides`` applied; one-line errors for an unknown key or a value of the wrong type."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from ..analyze.run import AnalyzeConfig, check

    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise ConfigError(f"analyze {kind}: '{bad[0]}' is not KEY=VALUE (e.g. lesion.draws=3)")
    # a list knob given one bare name (lesion.blocks=enc1.0) means the list of that one name
    overrides = [f"{o.split('=', 1)[0]}=[{o.split('=', 1)[1]}]" if o.split("=", 1)[0] in LIST_KNOBS
                 and not o.split("=", 1)[1].startswith(("[", "null")) else o for o in overrides]
    for o in overrides:  # a value YAML cannot parse (lesion.blocks=[a,b without its bracket): name it
        try:
            OmegaConf.from_dotlist([o])
        except yaml.YAMLError:
            raise ConfigError(f"analyze {kind}: '{o}': the value does not parse; a list is written [a,b]") from None
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(AnalyzeConfig), OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as ex:
        key = getattr(ex, "full_key", None) or ""
        msg = str(ex).splitlines()[0]
        raise ConfigError(f"analyze {kind}: {key + ': ' if key else ''}{msg}") from None
    check(cfg)
    return cfg


def run_folders(folder: Path, sweep: bool) -> list[Path]:
    """The run itself, or every run below a sweep folder that has a checkpoint; one-line errors if none."""
    from ..report.runs import discover_runs

    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder; give a run folder (outputs/runs/...) or a sweep folder")
    if not sweep and (folder / CHECKPOINT).is_file():
        return [folder]
    runs = [p for p in discover_runs(folder) if (p / CHECKPOINT).is_file()]
    if not runs:
        raise ConfigError(f"{folder}: no {CHECKPOINT} here or below (not a finished run, or a probe); train it first")
    return runs


def main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    from ..analyze.run import ANALYSES

    kind, rest = args[0], args[1:]
    if kind not in ANALYSES:
        raise ConfigError(f"analyze: unknown analysis '{kind}'; known: {', '.join(ANALYSES)}")
    sweep = any(a in ("-m", "--multirun") for a in rest)
    show = "--cfg" in rest
    rest = [a for a in rest if a not in ("-m", "--multirun", "--cfg", "job")]
    folders = [a for a in rest if "=" not in a]
    cfg = compose(kind, [a for a in rest if "=" in a])
    if show:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg), end="")
        return 0
    if len(folders) != 1:
        raise ConfigError(f"analyze {kind}: give one run (or sweep) folder, got {len(folders)}: {' '.join(folders) or '-'}")
    import torch

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    runs = run_folders(Path(folders[0]).expanduser(), sweep)
    for path in runs:
        result = ANALYSES[kind](path, cfg)
        print(summary_line(kind, path, result))
    return 0


def summary_line(kind: str, path: Path, r: dict) -> str:
    metric = r["metric"]
    if kind == "lesion" and "chosen" in r:
        return (f"{path}: {r['model']}: val {metric} {r['baseline'][metric]:.4g}, with {','.join(r['chosen']['blocks'])} "
                f"deleted {r['chosen'][metric]:.4g}; {r['seconds']:.1f} s -> lesion.json")
    if kind == "lesion":
        drop = r["single_drop"]
        deleted = "-" if drop is None else f"{r['single_mean']:.4g} (drop {drop:.4g})"
        return (f"{path}: {r['model']}: val {metric} {r['baseline'][metric]:.4g}, one block deleted {deleted}; "
                f"{len(r['not_deletable'])} not deletable; {r['seconds']:.1f} s -> lesion.json")
    h = r.get("hessian", {})
    return (f"{path}: {r['model']}: loss {r['centre_loss']:.4g} at the centre, nonconvex fraction "
            f"{r['nonconvex_fraction']:.3f}" + (f", |lmin/lmax| {h['ratio']:.3g}" if h else "")
            + f"; {r['seconds']:.1f} s -> landscape.json")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
