"""``skipbench <command> [hydra overrides]``: pops the command, hands the rest to Hydra.

Hydra parses ``sys.argv[1:]``, so ``--cfg job``, ``--info``, ``--help``, ``-m`` and launcher
plugins all work after the command. User mistakes (bad override, unknown option, wrong type, value
out of range) are printed as one line, no traceback; ``HYDRA_FULL_ERROR=1`` shows the full trace.

Exit codes: 0 done (or nothing to do), 1 the system failed us (disk full, a file that cannot be
written), 2 a user mistake (any :class:`~skipbench.errors.SkipbenchError`, one line), 3 the run
diverged, 130 Ctrl-C, 143 SIGTERM. Any other traceback is a bug.
"""

from __future__ import annotations

import os
import signal
import sys

_COMMAND = ["skipbench"]  # "skipbench train" once known: the prefix of every line we print


def _exit_on_signal(signum: int, frame) -> None:
    """Ctrl-C / SIGTERM outside the training loop: nothing to save, so leave at once.

    Raising KeyboardInterrupt into an import or a library that catches it leaves half-imported modules
    and double tracebacks behind (or is swallowed); ``os._exit`` cannot be caught. A run folder this
    process made and left empty is removed first. The training loop installs its own handler.
    """
    prepare = sys.modules.get("skipbench.train.prepare")
    for folder in prepare.held_folders() if prepare else []:
        folder.abandon(INTERRUPTED, f"{signal.Signals(signum).name} before the run started")
    os.write(2, f"{_COMMAND[0]}: interrupted ({signal.Signals(signum).name})\n".encode())
    os._exit(128 + signum)


def _guard_signals() -> dict:
    """Route SIGINT/SIGTERM to :func:`_exit_on_signal`; returns the old handlers (to restore)."""
    old = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, _exit_on_signal)
    except ValueError:  # not the main thread
        pass
    return old


# The imports below take ~0.3 s: a Ctrl-C during them exits cleanly too (handlers restored at the end).
_OLD_HANDLERS = _guard_signals() if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "skipbench" else {}

import dataclasses  # noqa: E402
import errno  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException  # noqa: E402

from .config import ConfigError, config_dir, register_configs  # noqa: E402
from .cli_help import train_help, wants_help  # noqa: E402
from .errors import RunFolderError, SkipbenchError  # noqa: E402
from .run_folder import (COMPLETED, CONFIG, DIVERGED, FAILED, HYDRA_CONFIG, HYDRA_DIR, INTERRUPTED,  # noqa: E402
                         METRICS, OVERRIDES)

for _sig, _handler in _OLD_HANDLERS.items():
    signal.signal(_sig, _handler)

USAGE = """usage: skipbench <command> [overrides ...] [hydra flags]

Commands:
  train     train one model (or a sweep with -m) and log to TensorBoard under outputs/
  report    aggregate finished runs below a folder: tables (md/csv/json) and plots
  probe     measure models at initialisation (gradients by depth, shattering, memory): probe.json
  reproduce run the literature's claims about skips and write docs/results.md with verdicts

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
    if summary and summary.get("status") == COMPLETED:
        # The summary names the headline metric in its one "best_val_<metric>" key.
        metric = next(k for k in summary if k.startswith("best_val_"))[len("best_val_"):]
        value = summary.get(f"final_val_{metric}")
        if value is not None and math.isfinite(value):
            return float(value)
    return None if "optuna" in sweeper_target else math.nan


def _train_task(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .run_folder import write_json
    from .train.loop import train
    from .train.prepare import claim_run_folder

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    sweep = hc.mode == RunMode.MULTIRUN
    folder = None
    summary = None
    sweeper = str(hc.sweeper.get("_target_", ""))
    if "optuna" in sweeper and "maximize" not in str(hc.sweeper.get("direction")):
        logging.getLogger("skipbench").warning("the Optuna sweeper minimises by default, and this job returns its "
                                               "val metric (higher is better): add hydra.sweeper.direction=maximize")
    try:
        if sweep:  # a single run was checked and its folder locked before Hydra made it
            check_added_keys(cfg, list(hc.overrides.task))
            folder = claim_run_folder(run_dir, resume=True)
        checked, _PRECHECKED[0] = _PRECHECKED[0] and not sweep, False  # checked before Hydra made the folder
        summary = train(cfg, run_dir, on_ready=lambda: _save_hydra_files(cfg, hc, run_dir), checked=checked)
    except Exception as ex:
        if not sweep:
            if _WANTS_TRACE[0]:
                raise
            # Our one line here (a bug re-raises: its traceback is what a report needs); SystemExit passes
            # Hydra's job wrapper, which would print a line of its own for an exception.
            raise SystemExit(_fail("train", ex)) from None
        if isinstance(ex, SkipbenchError):  # one bad combination in a sweep fails alone; the sweep goes on
            print(f"skipbench train: job {hc.job.num} ({','.join(hc.overrides.task)}): error: {one_line(str(ex))}",
                  file=sys.stderr)
        else:
            logging.getLogger("skipbench").exception("job %s crashed; the sweep goes on", hc.job.num)
        write_json(run_dir / METRICS, {"status": FAILED, "error": f"{type(ex).__name__}: {ex}"
                                       if not isinstance(ex, SkipbenchError) else str(ex)})
    else:
        if summary["status"] == INTERRUPTED:
            print(f"skipbench train: interrupted ({summary.get('signal')}) at step {summary['steps']}, checkpoint saved; "
                  f"continue with: skipbench train resume={run_dir}", file=sys.stderr)
            # Ctrl-C stops the whole sweep too, not just this job; SIGTERM (a scheduler's stop) says so.
            raise SystemExit(143 if summary.get("signal") == "SIGTERM" else 130)
        if summary["status"] == DIVERGED:
            print(f"skipbench train: {'job ' + str(hc.job.num) + ': ' if sweep else ''}the run diverged "
                  f"({summary.get('error')}); see {run_dir / METRICS}", file=sys.stderr)
            if not sweep:
                raise SystemExit(3)  # a sweep goes on: its other jobs are what it is for
    finally:
        if folder is not None:
            folder.release()  # a long sweep must not hold one descriptor per finished job
    return objective(summary, sweeper)


def _save_hydra_files(cfg, hc, run_dir: Path) -> None:
    """On resume Hydra is told not to write ``.hydra/`` (a resume that fails must leave the folder as it
    was); once the checkpoint has loaded, write what Hydra would have, so a later resume sees these overrides."""
    from omegaconf import OmegaConf

    if hc.output_subdir is not None or not cfg.resume:
        return
    (run_dir / HYDRA_DIR).mkdir(exist_ok=True)
    OmegaConf.save(cfg, run_dir / CONFIG)
    OmegaConf.save(OmegaConf.create({"hydra": OmegaConf.to_container(hc)}), run_dir / HYDRA_CONFIG)
    OmegaConf.save(hc.overrides.task, run_dir / OVERRIDES)


def precheck(config_name: str, args: list[str]) -> list[str] | None:
    """Check a single run completely before Hydra makes its run folder; then make and lock that folder.

    Returns the overrides that pin Hydra to the checked folder (``None``: nothing to do, a resume of a
    completed run). Only for plain overrides: flags (``--cfg``, ``--help``, ``-m`` ...) go straight to Hydra.
    """
    if any(a.startswith("-") for a in args):
        return []
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from .train.checkpoint import resolve_resume
    from .train.prepare import check_runnable, claim_run_folder

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name=config_name):
        cfg = compose(config_name, overrides=args, return_hydra_config=True)
    try:  # the folder Hydra would make (its ${now:...} resolved once, here)
        HydraConfig.instance().set_config(cfg)
        run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).expanduser().absolute()
    except Exception:  # an interpolation only a real job can resolve: the task function locks it instead
        run_dir = None
    with open_dict(cfg):
        del cfg["hydra"]
        if cfg.resume == "auto":  # this folder's own checkpoint if it has one, else a fresh run
            cfg.resume = resolve_resume("auto", run_dir) if run_dir is not None else None
    check_added_keys(cfg, args)
    state = check_runnable(cfg, cfg.resume)
    _PRECHECKED[0] = True  # the run's one validation: the task function does not repeat it
    if state is not None and state["step"] >= cfg.trainer.max_steps:
        print(f"skipbench train: resume={cfg.resume}: the run already completed (step {state['step']} of "
              f"trainer.max_steps={cfg.trainer.max_steps}); nothing to do, nothing changed (raise "
              "trainer.max_steps to train on)", file=sys.stderr)
        return None
    if run_dir is None:
        return []
    folder = claim_run_folder(run_dir, resume=bool(cfg.resume))
    pinned = [f"hydra.run.dir={_quote(str(folder.path))}"]
    if cfg.resume:
        pinned.append("hydra.output_subdir=null")  # written by the task once the checkpoint has loaded
    return pinned


def check_added_keys(cfg, args: list[str]) -> None:
    """``+trainer.max_step=100``: Hydra adds ``+`` keys with the struct flag off, so a typo would be
    accepted and ignored. Only keys of skipbench's schema may be added (or forced with ``++``)."""
    from omegaconf import OmegaConf

    for override in _parse_overrides(args):
        key = override.key_or_group
        if override.is_hydra_override() or not override.is_add() and not override.is_force_add() \
                or "/" in key or (config_dir() / key).is_dir():  # a config group: Hydra checks its options
            continue
        parent_key, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        schema = OmegaConf.get_type(parent) if OmegaConf.is_config(parent) else None
        known = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []
        if leaf not in known or leaf.startswith("_"):
            shown = ", ".join(k for k in known if not k.startswith("_")) or "none (this node takes no new keys)"
            raise ConfigError(f"unknown key '{key}' (added with '+'); known: {shown}")


def _parse_overrides(args: list[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(args)


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


def one_line(text: str, limit: int = 400) -> str:
    """One line however odd the input: newlines folded, each over-long word cut (a 100 KB value is
    echoed as its first 60 and last 20 characters), the whole kept under ``limit`` characters."""
    text = " ".join(text.split())
    text = re.sub(r"\S{120,}", lambda m: f"{m[0][:60]}...({len(m[0]) - 80} characters cut)...{m[0][-20:]}", text)
    return text if len(text) <= limit else text[: limit - 25] + f"... ({len(text) - limit + 25} more)"


def _user_error(ex: BaseException) -> SkipbenchError | None:
    """Ours, or ours wrapped by Hydra (``instantiate``'s "Error in call to target")."""
    while ex is not None:
        if isinstance(ex, SkipbenchError):
            return ex
        ex = ex.__cause__ or ex.__context__
    return None


_QUOTE_HINT = ("; quote it for Hydra inside shell quotes: 'key=\"value\"' "
               "(e.g. skipbench train 'dataset.root=\"/data/my photos\"')")


def explain(command: str, ex: BaseException) -> tuple[str, int] | None:
    """The one line and exit code for a fault, or ``None`` for a bug (its traceback is what helps)."""
    from hydra.errors import HydraException, OverrideParseException

    ours = _user_error(ex)
    if ours is not None:
        return str(ours), ours.exit_code
    cause = ex
    while isinstance(cause, HydraException) and cause.__cause__ is not None:  # "Error in call to target"
        cause = cause.__cause__
    system = isinstance(cause, OSError) and not isinstance(cause, HydraException)  # Hydra's missing config is one
    if isinstance(ex, (HydraException, OmegaConfBaseException)) and not system:
        text = getattr(ex, "override", None) or ""
        if isinstance(ex, OverrideParseException) and any(ord(c) > 127 or c.isspace() for c in text):
            return f"cannot parse override '{text}': Hydra reads spaces and non-ASCII characters only in a quoted " \
                   f"value{_QUOTE_HINT}", 2
        return describe_error(ex), 2
    if isinstance(ex, ValueError) and str(ex).startswith("Only one of"):
        return str(ex), 2  # Hydra's flags used together
    if system:  # mostly the system, not the user: disk full, a folder that cannot be written
        what = f"{cause.filename}: " if cause.filename else ""
        hint = {errno.ENOSPC: " (disk full; the last checkpoint is kept: free space, then resume)",
                errno.EROFS: " (read-only file system; choose a writable folder with hydra.run.dir=...)",
                errno.EACCES: " (permission denied; choose a writable folder with hydra.run.dir=...)",
                errno.ENAMETOOLONG: " (a value too long for a file name)"}.get(cause.errno, "")
        return f"{what}{cause.strerror or cause}{hint}", 2 if cause.errno == errno.ENAMETOOLONG else 1
    if isinstance(ex, KeyboardInterrupt):
        return "interrupted", 130
    return None


def _fail(command: str, ex: BaseException) -> int:
    """Print the fault's one line, mark or remove the run folder it leaves, return the exit code."""
    found = explain(command, ex)
    if found is None:
        raise ex
    msg, code = found
    prepare = sys.modules.get("skipbench.train.prepare")
    for folder in prepare.held_folders() if prepare else []:
        folder.abandon(INTERRUPTED if code == 130 else FAILED, msg)
    prefix = f"skipbench {command}: " if code == 130 else f"skipbench {command}: error: "
    print(prefix + one_line(msg), file=sys.stderr)
    return code


_WANTS_TRACE = [False]  # HYDRA_FULL_ERROR=1 from the user (we set it for Hydra ourselves)
_PRECHECKED = [False]  # precheck() validated the single run Hydra is about to start


def _run_hydra(command: str, app: Callable[[], None], args: list[str], check: bool = False) -> int:
    user_wants_trace = _WANTS_TRACE[0] = os.environ.get("HYDRA_FULL_ERROR") == "1"
    prog = sys.argv[0]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    try:
        pinned = precheck(command, args) if check else []
        if pinned is None:
            return 0  # nothing to do (said why)
        sys.argv = [prog, *args, *pinned]  # argv[0] stays the executable: Hydra names completion after it
        app()
    finally:
        sys.argv = [prog]
        _PRECHECKED[0] = False
        if not user_wants_trace:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    from .sweep import take_outcome

    outcome = take_outcome()  # left by the sweep's callback (configs/train.yaml: hydra.callbacks)
    return 1 if outcome is not None and not outcome.ok else 0  # a job of the sweep did not complete


# ---------------------------------------------------------------- resume
def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def with_resume(args: list[str]) -> list[str]:
    """``resume=RUN_DIR``: re-apply that run's overrides (yours win) and write into the same folder.

    A run folder may come from someone else: only overrides of skipbench's own config keys with plain
    values are re-applied (never ``_target_``, ``hydra.*``, ``+``/``++``/``~`` or interpolations, which
    could make ``instantiate`` call anything); anything else is refused, naming it.
    """
    resume = [a for a in args if _override_key(a) == "resume"]
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
    from .train.checkpoint import find_checkpoint

    find_checkpoint(str(path))  # fail here, in one line, before Hydra touches the folder
    rest = [a for a in args if _override_key(a) != "resume"]
    mine = {_override_key(a) for a in rest}
    old = [o for o in _trusted_overrides(saved) if _override_key(o) not in mine | {"resume"}]
    return [*old, *rest, f"resume={_quote(str(path))}", f"hydra.run.dir={_quote(str(run_dir))}"]


def _trusted_overrides(saved: Path) -> list[str]:
    """The overrides in a run's ``.hydra/overrides.yaml``, each checked against skipbench's schema."""
    import yaml
    from hydra.errors import HydraException

    from .config import SCHEMAS, DiagnosticsConfig, TrainConfig, TrainerConfig

    try:
        lines = yaml.safe_load(saved.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as ex:
        raise RunFolderError(f"{saved}: cannot read it ({one_line(str(ex), 150)})") from None
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise RunFolderError(f"{saved}: not a list of overrides")
    names = lambda *classes: {f.name for c in classes for f in dataclasses.fields(c)}  # noqa: E731
    fields = names(TrainConfig)
    known = {"trainer": names(TrainerConfig), "diagnostics": names(DiagnosticsConfig),
             **{group: names(*options.values()) for group, options in SCHEMAS.items()}}  # section -> its keys
    groups = [g for g in (*SCHEMAS, "experiment") if (config_dir() / g).is_dir()]
    for line in lines:
        key = _override_key(line)
        refuse = f"{saved}: refusing to re-apply '{one_line(line, 120)}'"
        try:
            (override,) = _parse_overrides([line])
        except HydraException:
            raise RunFolderError(f"{refuse}: not a valid override") from None
        if key == "resume":
            continue
        if override.is_hydra_override() or key.startswith("hydra"):
            raise RunFolderError(f"{refuse}: hydra.* settings are not re-applied on resume (key {key})")
        if not line.startswith(key) or override.package or override.is_sweep_override():
            raise RunFolderError(f"{refuse}: only plain KEY=VALUE overrides are re-applied (not +, ++, ~, @ or sweeps)")
        parts = key.split(".")
        if any(p.startswith("_") for p in parts):
            raise RunFolderError(f"{refuse}: key {key} is not a setting (no _target_, _args_, _partial_ ...)")
        if "${" in line.split("=", 1)[-1]:
            raise RunFolderError(f"{refuse}: interpolations (${{...}}) are not re-applied")
        if len(parts) == 1 and key in groups:
            choice = str(override.value())
            ok = re.fullmatch(r"[A-Za-z0-9_\-]+", choice) and (config_dir() / key / f"{choice}.yaml").is_file()
        elif len(parts) == 1:
            ok = key in fields and key not in known and key not in groups
        else:
            ok = len(parts) == 2 and parts[1] in known.get(parts[0], set())
        if not ok:
            raise RunFolderError(f"{refuse}: {key} is not a skipbench config key")
    return lines


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
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key.lstrip("+") in ("hydra.run.dir", "hydra.sweep.dir") and not value.strip(" '\""):
            raise RunFolderError(f"{key} is empty: give a folder (e.g. {key}=outputs/my_run), or leave it out "
                                 "for the default under outputs/")
    if wants_help(args):  # Hydra's own --help takes ~2 s listing config groups
        print(train_help("train", args))
        return 0
    if "-m" not in args and "--multirun" not in args:
        args = with_resume(args)
    return _run_hydra("train", _hydra_app(_train_task, "train"), args, check=True)


def report(args: list[str]) -> int:
    from .report.cli import main as report_main

    return report_main(args)


def _probe_task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from .claims.probes import probe_run

    probe_run(cfg, Path(HydraConfig.get().runtime.output_dir))


def probe(args: list[str]) -> int:
    return _run_hydra("probe", _hydra_app(_probe_task, "train"), expand_home(args))


def reproduce(args: list[str]) -> int:
    from .claims.reproduce import main as reproduce_main

    return reproduce_main(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"train": train, "report": report, "probe": probe,
                                                   "reproduce": reproduce}


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
    _COMMAND[0] = f"skipbench {command}"
    old_handlers = _guard_signals()  # start-up included: the training loop takes over while it runs
    if argv is None:
        old_handlers = {}  # the program itself: keep them to the end, interpreter shutdown included
    try:
        return COMMANDS[command](rest)
    except Exception as ex:  # every fault leaves in one place: one line and its exit code
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        return _fail(command, ex)
    except KeyboardInterrupt as ex:  # a second Ctrl-C in the loop: it saved what it could
        return _fail(command, ex)
    except SystemExit as ex:  # the task's own exit codes (diverged 3, interrupted 130/143), as a return value
        if isinstance(ex.code, str):
            print(ex.code, file=sys.stderr)
        return ex.code if isinstance(ex.code, int) else int(ex.code is not None)
    finally:
        prepare = sys.modules.get("skipbench.train.prepare")
        for folder in prepare.held_folders() if prepare else []:
            folder.release()
        if prepare:  # the data set kept for the runs of this command
            prepare.forget_loaded()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
