"""skipbench from Python: the CLI's runs, sweeps and reports as functions (``import skipbench``).

Every function takes the CLI's overrides (``["model=resnet", "trainer.max_steps=200"]``) and does what
the command would: the same validation (a mistake raises a :class:`~skipbench.errors.SkipbenchError`
whose message is the CLI's one line), the same run folders under ``outputs/`` (locked, with
``.hydra/``), the same TensorBoard output. The caller needs no Hydra state: the schemas are registered,
the config folder found and Hydra's globals cleared here. Progress bars are ``tqdm.auto``: widgets in
Jupyter, text in a terminal.

    >>> import skipbench
    >>> run = skipbench.train(["model=resnet", "trainer.max_steps=100"])
    >>> run["final_val_psnr"], run.folder
    >>> table = skipbench.compare(models=["autoencoder", "unet_concat"], seeds=[0, 1],
    ...                           overrides=["trainer.max_steps=100"])

Tables are a pandas ``DataFrame`` when pandas is installed, else a list of dicts (one per group).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

from omegaconf import DictConfig, OmegaConf, open_dict

from .errors import ConfigError, SkipbenchError

Overrides = Sequence[str]
Table = Union[list[dict[str, Any]], "pandas.DataFrame"]  # noqa: F821  (pandas is optional)

__all__ = ["RunResult", "compose", "train", "sweep", "compare", "report", "model_summary"]


class RunResult(dict):
    """A run's summary (``metrics.json``: status, final and best metrics, params, speed...) with its
    folder as ``.folder``."""

    folder: Path

    def __init__(self, summary: dict[str, Any], folder: Path) -> None:
        super().__init__(summary)
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"RunResult(folder={str(self.folder)!r}, {dict.__repr__(self)})"


@contextmanager
def user_errors(command: str = "train") -> Iterator[None]:
    """Hydra's and omegaconf's errors about the user's input become the CLI's one line, raised as a
    :class:`ConfigError`; ours pass as they are; a bug or a system fault keeps its own traceback."""
    from .commands.exits import explain, one_line

    try:
        yield
    except SkipbenchError:
        raise
    except Exception as ex:
        found = explain(command, ex)
        if found is None or found[1] != 2:
            raise
        raise ConfigError(one_line(found[0])) from None


def compose(overrides: Overrides = ()) -> DictConfig:
    """The config ``skipbench train overrides...`` would run (``--cfg job``), without the ``hydra`` node."""
    from .config import compose_config

    with user_errors():
        return compose_config(list(overrides))


def _task_name(cfg: DictConfig) -> str:
    from hydra.utils import get_class

    return str(get_class(cfg.task._target_).name)


def train(overrides: Overrides | DictConfig = (), run_dir: str | Path | None = None) -> RunResult:
    """Check, build and train one run, as ``skipbench train overrides...``; returns its summary.

    ``overrides``: the CLI's ``KEY=VALUE`` list, or a config from :func:`compose` (edited as you like).
    ``run_dir``: the run folder (default: ``hydra.run.dir``, i.e. ``outputs/runs/<time>_<task>_<model>``).
    ``resume=<folder>`` / ``resume=auto`` continue a run. A diverged run returns ``status="diverged"``;
    Ctrl-C stops after the current step with a checkpoint (``status="interrupted"``).
    """
    from . import run_lock
    from .commands.exits import explain
    from .commands.job import write_hydra_files
    from .config import check_config, compose_config, planned_run_dir
    from .provenance import provenance
    from .run_folder import FAILED, METRICS
    from .train import data_cache
    from .train.checkpoint import resolve_resume
    from .train.context import RunContext
    from .train.loop import build, fit
    from .train.validate import check_runnable

    wall_start = time.perf_counter()
    with user_errors():
        if isinstance(overrides, DictConfig):
            cfg, args, hydra_node, choices = overrides.copy(), [], None, {}
        else:
            args = list(overrides)
            full = compose_config(args, hydra=True)
            hydra_node = full.hydra
            choices = {f"choice.{g}": str(v) for g, v in hydra_node.runtime.choices.items()
                       if not g.startswith(("hydra", "schema")) and v is not None}
            run_dir = run_dir if run_dir is not None else planned_run_dir(full)
            cfg = full.copy()
            with open_dict(cfg):
                del cfg["hydra"]
        check_config(cfg)  # before the folder is named from model.name (a custom model's needs model.target)
        if run_dir is None:
            stamp = time.strftime("%Y-%m-%d_%H-%M-%S") + f".{time.time_ns() // 1000 % 1_000_000:06d}"
            run_dir = Path("outputs/runs") / f"{stamp}_{_task_name(cfg)}_{cfg.model.name}"
        run_dir = Path(run_dir).expanduser().absolute()
        if cfg.resume == "auto":
            with open_dict(cfg):
                cfg.resume = resolve_resume("auto", run_dir)
    resume = resolve_resume(cfg.resume, run_dir) if cfg.resume else None
    try:
        state = check_runnable(cfg, resume)
        if state is not None and state["step"] >= cfg.trainer.max_steps:  # nothing to do: the summary it has
            import json

            folder = Path(resume) if Path(resume).is_dir() else Path(resume).parent
            return RunResult(json.loads((folder / METRICS).read_text()), folder)
        folder = run_lock.claim_run_folder(run_dir, resume=bool(resume))
        try:
            if hydra_node is not None:
                write_hydra_files(cfg, hydra_node, args, run_dir)
            else:
                write_hydra_files(cfg, OmegaConf.create({"mode": "RUN"}), [], run_dir)
            context = RunContext.local(cfg, choices=choices, info=provenance())
            summary = fit(build(cfg, resume, context), run_dir, context, wall_start)
        except Exception as ex:
            found = explain("train", ex)
            folder.abandon(FAILED, found[0] if found else f"{type(ex).__name__}: {ex}")
            raise
        finally:
            folder.release()
    finally:
        data_cache.forget_loaded()
    return RunResult(summary, run_dir)


def model_summary(overrides: Overrides = ()) -> list[dict[str, Any]]:
    """The per-layer cost table (``skipbench summary``): one dict per layer (``layer``, ``kind``,
    ``output_shape``, ``params``, ``flops``, ``saved_bytes``, ``model``), one sample, nothing trained."""
    from .train import data_cache
    from .train.layer_table import layer_table, rows_json
    from .train.loop import build
    from .train.validate import check_runnable

    cfg = compose(overrides)
    try:
        check_runnable(cfg, None)
        run = build(cfg)
        sample = run.task.make_batch(run.data.val.take(slice(0, 1)), None)[0].to(run.device)
        return [{**row, "model": str(cfg.model.name)} for row in rows_json(layer_table(run.model, sample))]
    finally:
        data_cache.forget_loaded()


def sweep(overrides: Overrides, sweep_dir: str | Path | None = None, **report_options: Any) -> Table:
    """``skipbench train -m overrides...`` in this process (Hydra's sweeper and launcher, the same job
    folders), then :func:`report` on the sweep folder. ``report_options``: :func:`report`'s keywords."""
    from .cli import train as cli_train
    from .commands.exits import set_command
    from .config import compose_config
    from .train import data_cache

    args = [a for a in overrides if a not in ("-m", "--multirun")]
    with user_errors():
        if sweep_dir is None:  # where Hydra will put it (its ${now:...} resolved once, here)
            sweep_dir = str(OmegaConf.select(compose_config(args, hydra=True), "hydra.sweep.dir"))
        sweep_dir = Path(sweep_dir).expanduser().absolute()
        set_command("train")
        try:
            cli_train(["-m", *args, f"hydra.sweep.dir={sweep_dir}"])  # a failed job is recorded in its folder
        finally:
            data_cache.forget_loaded()
    return report(sweep_dir, **report_options)


def compare(models: Sequence[str], seeds: Sequence[int] = (0,), overrides: Overrides = (),
            sweep_dir: str | Path | None = None, **report_options: Any) -> Table:
    """Train every model with every seed (one sweep) and return the report's table, one row per model."""
    if not models:
        raise ConfigError("compare: models is empty; give one or more of skipbench's models (or model=custom ...)")
    args = [f"model={','.join(models)}", f"seed={','.join(str(int(s)) for s in seeds)}", *overrides]
    return sweep(args, sweep_dir, **report_options)


def report(folder: str | Path, metric: str | None = None, group_by: Sequence[str] | None = None,
           task: str | None = None, tags: Sequence[str] | None = None, target: float | None = None,
           write: bool = True, plots: bool = False, as_frame: bool | None = None) -> Table:
    """``skipbench report folder``: one row per group of seeds (mean, std, 95 % CI of the metric, steps
    to target, params, speed). ``write``: also write report.md/csv/json there (``plots``: and the PNGs).
    ``as_frame``: a DataFrame (None: when pandas is installed) or a list of dicts."""
    import json

    from .report.cli import FORMATS, select_runs
    from .report.aggregate import build_report
    from .report.render import render_json, write_formats
    from .report.runs import load_runs

    root = Path(folder)
    runs = select_runs(load_runs(root), root, task=task, tags=tags)
    rep = build_report(runs, root=str(folder), metric=metric, group_by=list(group_by) if group_by else None,
                       target=target)
    names: list[str] = []
    if plots:
        from .report.plots import write_plots

        names = [p.name for p in write_plots(rep, root)[0]]
    if write:
        write_formats(rep, root, list(FORMATS), names)
    return records(json.loads(render_json(rep, names))["groups"], as_frame)


def records(groups: list[dict[str, Any]], as_frame: bool | None = None) -> Table:
    """The report's groups as flat rows: ``model``, ``n``, ``final_val_psnr_mean``, ``..._std``, ``..._ci95``..."""
    rows = []
    for g in groups:
        row: dict[str, Any] = {"group": g["group"], **g["keys"], "n": g["n"], "runs": g["runs"], "failed": g["failed"]}
        for key in g:
            if key.startswith(("final_", "best_")) and isinstance(g[key], dict):
                row.update({f"{key}_{k}": v for k, v in g[key].items() if k in ("mean", "std", "ci95")})
        row.update({"steps_to_target": g["steps_to_target"]["mean"], "params": g["params"],
                    "steps_per_s": g["steps_per_s"], "activations_mb": g["activations_mb"],
                    "run_names": g["run_names"]})
        rows.append(row)
    if as_frame is False:
        return rows
    try:
        import pandas
    except ImportError:
        if as_frame:
            raise ConfigError("as_frame=True needs pandas (pip install pandas); as_frame=None gives plain records") from None
        return rows
    return pandas.DataFrame(rows)
