"""``skipbench <command> [hydra overrides]``: pops the command, hands the rest to Hydra.

Hydra parses ``sys.argv[1:]``, so ``--cfg job``, ``--info``, ``--help``, ``-m`` and launcher
plugins all work after the command. User mistakes (bad override, unknown option, wrong type, value
out of range) are printed as one line, no traceback; ``HYDRA_FULL_ERROR=1`` shows the full trace.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from pathlib import Path
from typing import Callable

from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from .config import ConfigError, config_dir, register_configs

USAGE = """usage: skipbench <command> [overrides ...] [hydra flags]

Commands:
  train     train one model (or a sweep with -m) and log to TensorBoard under outputs/
  report    aggregate finished runs below a folder: tables (md/csv/json) and plots

Examples:
  skipbench train model=unet_concat
  skipbench train -m model=autoencoder,unet_concat,unet_add,resnet,densenet seed=0,1,2
  skipbench train --cfg job
  skipbench train --help          # config groups, options and every key
  skipbench report outputs/multirun/<sweep>
  tensorboard --logdir outputs/

Shell completion (bash):  eval "$(skipbench train -sc install=bash)"
"""


def objective(summary: dict | None, sweeper_target: str = "") -> float | None:
    """What the task function returns to Hydra: the run's headline metric, higher is better (final val
    PSNR, mIoU or accuracy), for sweepers that optimise (set them to maximise, see README). A failed or
    diverged run returns what the sweeper counts as a failed trial: ``None`` for Optuna (trial state
    FAIL, the study goes on; a NaN would abort it), NaN for the others (Nevergrad scores NaN as its
    worst loss; a ``None`` would raise a TypeError)."""
    if summary and summary.get("status") == "completed":
        # The summary names the headline metric in its one "best_val_<metric>" key.
        metric = next(k for k in summary if k.startswith("best_val_"))[len("best_val_"):]
        value = summary.get(f"final_val_{metric}")
        if value is not None and math.isfinite(value):
            return float(value)
    return None if "optuna" in sweeper_target else math.nan


def _train_task(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .train.checkpoint import write_json
    from .train.loop import train

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    summary = None
    sweeper = str(hc.sweeper.get("_target_", ""))
    if "optuna" in sweeper and "maximize" not in str(hc.sweeper.get("direction")):
        logging.getLogger("skipbench").warning("the Optuna sweeper minimises by default, and this job returns its "
                                               "val metric (higher is better): add hydra.sweeper.direction=maximize")
    try:
        summary = train(cfg, run_dir)
    except ConfigError as ex:
        if hc.mode != RunMode.MULTIRUN:
            print(f"skipbench train: error: {ex}", file=sys.stderr)
            raise SystemExit(2) from None  # SystemExit passes Hydra's job wrapper without its report
        # One bad combination in a sweep fails alone: record it and let the sweep go on.
        print(f"skipbench train: job {hc.job.num} ({','.join(hc.overrides.task)}): error: {ex}", file=sys.stderr)
        write_json(run_dir / "metrics.json", {"status": "failed", "error": str(ex)})
    except Exception as ex:
        if hc.mode != RunMode.MULTIRUN:
            raise  # a crash, not a user mistake: the traceback is what a bug report needs
        logging.getLogger("skipbench").exception("job %s crashed; the sweep goes on", hc.job.num)
        write_json(run_dir / "metrics.json", {"status": "failed", "error": f"{type(ex).__name__}: {ex}"})
    else:
        if summary["status"] == "interrupted":
            raise SystemExit(130)  # Ctrl-C stops the whole sweep too, not just this job
    return objective(summary, sweeper)


def precheck(config_name: str, args: list[str]) -> None:
    """Compose and range-check a single run's config before Hydra makes a run folder.

    Only for plain overrides: flags (``--cfg``, ``--help``, ``-m`` ...) go straight to Hydra.
    """
    if any(a.startswith("-") for a in args):
        return
    from hydra import compose, initialize_config_dir

    from .config import check_config

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name=config_name):
        check_config(compose(config_name, overrides=args))


def _hydra_app(task: Callable, config_name: str) -> Callable[[], None]:
    import hydra

    register_configs()
    return hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)(task)


# ---------------------------------------------------------------- errors, one line each
def _first_line(ex: BaseException) -> str:
    return str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__


def describe_error(ex: BaseException) -> str:
    """One line naming the bad value and what is allowed."""
    from hydra.errors import MissingConfigException, OverrideParseException

    cause = ex.__cause__
    lines = [line.strip() for line in str(ex).strip().splitlines() if line.strip()] or [type(ex).__name__]
    if isinstance(ex, MissingConfigException) and ex.missing_cfg_file and ex.options is not None:
        group, _, option = ex.missing_cfg_file.rpartition("/")
        return f"unknown {group} '{option}'; known: {', '.join(sorted(ex.options))}"
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        known = ""
        if dataclasses.is_dataclass(getattr(cause, "object_type", None)):
            fields = [f.name for f in dataclasses.fields(cause.object_type) if not f.name.startswith("_")]
            known = "; known: " + ", ".join(fields)
        return f"unknown key '{cause.full_key}'{known}"
    if isinstance(ex, OverrideParseException):
        detail = lines[1].split(" expecting ")[0] if len(lines) > 1 else ""
        return f"{lines[0].replace('Error parsing override', 'cannot parse override')}: {detail} (write KEY=VALUE)"
    msg = lines[0]
    for prefix in ("Error merging override ", "Error merging "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
            break
    if isinstance(cause, OmegaConfBaseException):
        # "Value 'abc' of type 'str' could not be converted to Integer" -> to the point
        msg = f"{msg}: " + _first_line(cause).replace(" of type 'str'", "")
    return msg


def _user_errors() -> tuple[type[BaseException], ...]:
    from hydra.errors import HydraException

    from .models import UnknownModelError

    return (HydraException, OmegaConfBaseException, ConfigError, UnknownModelError)


def _run_hydra(command: str, app: Callable[[], None], args: list[str], check: bool = False) -> int:
    user_wants_trace = os.environ.get("HYDRA_FULL_ERROR") == "1"
    prog = sys.argv[0]
    sys.argv = [prog, *args]  # argv[0] stays the executable: Hydra names completion after it
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    try:
        if check:
            precheck(command, args)
        app()
    except _user_errors() as ex:
        if user_wants_trace:
            raise
        print(f"skipbench {command}: error: {describe_error(ex)}", file=sys.stderr)
        return 2
    except ValueError as ex:
        if user_wants_trace or not str(ex).startswith("Only one of"):
            raise
        print(f"skipbench {command}: error: {ex}", file=sys.stderr)  # Hydra's flags used together
        return 2
    finally:
        sys.argv = [prog]
        if not user_wants_trace:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    return 0


# ---------------------------------------------------------------- resume
def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def with_resume(args: list[str]) -> list[str]:
    """``resume=RUN_DIR``: re-apply that run's overrides (yours win) and write into the same folder."""
    resume = [a for a in args if _override_key(a) == "resume"]
    if not resume:
        return args
    value = resume[-1].split("=", 1)[1].strip("'\"")
    path = Path(value).expanduser().resolve()
    run_dir = path if path.is_dir() else path.parent
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise ConfigError(f"resume={value}: not a skipbench run folder (no .hydra/overrides.yaml there)")
    from omegaconf import OmegaConf

    from .train.checkpoint import find_checkpoint

    find_checkpoint(str(path))  # fail here, in one line, before Hydra touches the folder
    rest = [a for a in args if _override_key(a) != "resume"]
    mine = {_override_key(a) for a in rest}
    old = [o for o in OmegaConf.load(saved) if _override_key(o) not in mine | {"resume", "hydra.run.dir"}]
    return [*old, *rest, f"resume={_quote(str(path))}", f"hydra.run.dir={_quote(str(run_dir))}"]


def expand_home(args: list[str]) -> list[str]:
    """``dataset.root=~/data``: the shell leaves the ``~`` alone (``dataset.root`` is no variable name)
    and Hydra's override grammar rejects it, so expand it here, quoted, as a user expects."""
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and not key.startswith("-") and value.startswith("~") and "," not in value:
            a = f"{key}={_quote(os.path.expanduser(value))}"
        out.append(a)
    return out


def train(args: list[str]) -> int:
    args = expand_home(args)
    if "-m" not in args and "--multirun" not in args:
        try:
            args = with_resume(args)
        except ConfigError as ex:
            print(f"skipbench train: error: {ex}", file=sys.stderr)
            return 2
    return _run_hydra("train", _hydra_app(_train_task, "train"), args, check=True)


def report(args: list[str]) -> int:
    from .report.cli import main as report_main

    return report_main(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"train": train, "report": report}


def _complete(args: list[str]) -> int:
    """``skipbench -sc query=bash`` from Hydra's bash completion: route to the command's app."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if len(words) >= 2 and words[1] == "train" and (len(words) > 2 or line.endswith(" ")):
        # Hydra strips only the program name from COMP_LINE; strip the command too.
        os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]]) + (" " if line.endswith(" ") else "")
        return _run_hydra("train", _hydra_app(_train_task, "train"), args)
    if any(a.startswith("query=") for a in args):
        prefix = words[1] if len(words) == 2 and not line.endswith(" ") else ""
        print(" ".join(c for c in COMMANDS if c.startswith(prefix)))
        return 0
    return _run_hydra("train", _hydra_app(_train_task, "train"), args)  # -sc install/uninstall


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args[0] in ("--version", "-V"):
        from . import __version__

        print(f"skipbench {__version__}")
        return 0
    if args[0] in ("-sc", "--shell-completion"):
        return _complete(args)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"skipbench: error: unknown command '{command}'; known: {', '.join(COMMANDS)}\n", file=sys.stderr)
        print(USAGE, end="", file=sys.stderr)
        return 2
    try:
        return COMMANDS[command](rest)
    except KeyboardInterrupt:  # before training starts (or a second Ctrl-C): nothing to save
        print(f"skipbench {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
