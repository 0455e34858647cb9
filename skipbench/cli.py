"""``skipbench <command> [hydra overrides]``: pops the command, hands the rest to Hydra.

Hydra parses ``sys.argv[1:]``, so ``--cfg job``, ``--info``, ``--help``, ``-m`` and launcher
plugins all work after the command. User mistakes (bad override, unknown option, wrong type, value
out of range) are printed as one line, no traceback; ``HYDRA_FULL_ERROR=1`` shows the full trace.
Exit codes and error lines: :mod:`skipbench.commands.exits`.

Only dispatch lives here; the commands' work is in :mod:`skipbench.commands` and the packages it calls.
Imports at module level are light, so :func:`main` installs the signal guard before torch and Hydra load.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable


def _interrupted_while_starting(signum: int, frame) -> None:
    """Ctrl-C / SIGTERM while the CLI's own modules still import: nothing has started, so leave at once
    with the one line the signal guard would print (it takes over in :func:`main`)."""
    command = " ".join(["skipbench", *sys.argv[1:2]])
    os.write(2, f"{command}: interrupted ({signal.Signals(signum).name})\n".encode())
    os._exit(128 + signum)


if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "skipbench":  # a process of its own, not an import
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _interrupted_while_starting)

from .commands import exits  # noqa: E402

USAGE = """usage: skipbench <command> [overrides ...] [hydra flags]

Commands:
  train     train one model (or a sweep with -m) and log to TensorBoard under outputs/
  report    aggregate finished runs below a folder: tables (md/csv/json) and plots
  probe     measure models at initialisation (gradients by depth, shattering, memory): probe.json
  analyze   lesion or landscape studies of a finished run (or a sweep folder): lesion.json, landscape.json
  reproduce run the literature's claims about skips and write docs/results.md with verdicts
  summary   per-layer cost table of a model (shape, params, FLOPs, saved activations), no training
  tb        the TensorBoard command for a folder of runs (names lead with task and variant) and its views' links

Examples:
  skipbench train model=unet_concat
  skipbench train -m model=autoencoder,unet_concat,unet_add,resnet,densenet seed=0,1,2
  skipbench train --cfg job
  skipbench train --help          # config groups, options and every key
  skipbench report outputs/multirun/<sweep>
  skipbench analyze lesion outputs/runs/<run> lesion.draws=3
  skipbench analyze landscape -m outputs/multirun/<sweep> landscape.grid=11
  tensorboard --logdir outputs/    # or: skipbench tb outputs/ (readable run names, links to the views)

Shell completion (bash):  eval "$(skipbench train -sc install=bash)"
"""


def train(args: list[str]) -> int:
    from .cli_help import train_help, wants_help
    from .commands.job import hydra_app, run_hydra, train_task
    from .commands.overrides import check_run_dirs, expand_home, launcher_aliases, resume_sweep, with_resume

    args = launcher_aliases(expand_home(args))
    check_run_dirs(args)
    if wants_help(args):  # Hydra's own --help takes ~2 s listing config groups
        print(train_help("train", args))
        return 0
    sweep = resume_sweep(args)  # resume=SWEEP_DIR: that sweep again (finished jobs reused)
    if sweep is not None:
        args = sweep
    elif "-m" not in args and "--multirun" not in args:
        args = with_resume(args)
    return run_hydra("train", hydra_app(train_task, "train"), args, check=True)


def report(args: list[str]) -> int:
    from .report.cli import main as report_main

    return report_main(args)


PROBE_HELP = """usage: skipbench probe [overrides ...] [-m]

Build a model exactly as `skipbench train` would (same config keys and overrides), measure it at
initialisation without training, and write probe.json into the run folder:
  gradients by depth   ||dL/dW|| / ||W|| of every main-path conv after one backward, and their spread (decades)
  shattering           correlation of the input gradients of neighbouring inputs (Balduzzi et al. 2017)
  memory               bytes a training step holds: activations saved for backward, parameters, gradients
A probe folder holds no checkpoint: `skipbench report` leaves it out of training comparisons.

Examples:
  skipbench probe model=resnet model.blocks_per_level=8
  skipbench probe -m model=plain,resnet,highway model.blocks_per_level=2,8 hydra.sweep.dir=outputs/probes

Every key of `skipbench train --help` applies (model.*, dataset.*, task.*, trainer.batch_size, seed).
"""


def probe(args: list[str]) -> int:
    from .cli_help import wants_help
    from .commands.job import hydra_app, probe_task, run_hydra
    from .commands.overrides import expand_home

    if wants_help(args):
        print(PROBE_HELP, end="")
        return 0
    return run_hydra("probe", hydra_app(probe_task, "train"), expand_home(args), check=True)


def summary(args: list[str]) -> int:
    from .commands.summary import main as summary_main

    return summary_main(args)


def tb(args: list[str]) -> int:
    from .report.tb_links import main as tb_main

    return tb_main(args)


def analyze(args: list[str]) -> int:
    from .commands.analyze import main as analyze_main

    return analyze_main(args)


def reproduce(args: list[str]) -> int:
    from .claims.reproduce import main as reproduce_main

    return reproduce_main(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"train": train, "report": report, "probe": probe,
                                                   "analyze": analyze, "reproduce": reproduce, "tb": tb,
                                                   "summary": summary}


def _complete(args: list[str]) -> int:
    """``skipbench -sc query=bash`` from Hydra's bash completion: route to the command's app."""
    from .commands.job import hydra_app, run_hydra, train_task

    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if len(words) >= 2 and words[1] == "train" and (len(words) > 2 or line.endswith(" ")):
        # Hydra strips only the program name from COMP_LINE; strip the command too.
        os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]]) + (" " if line.endswith(" ") else "")
        return run_hydra("train", hydra_app(train_task, "train"), args)
    if any(a.startswith("query=") for a in args):
        prefix = words[1] if len(words) == 2 and not line.endswith(" ") else ""
        print(" ".join(c for c in COMMANDS if c.startswith(prefix)))
        return 0
    return run_hydra("train", hydra_app(train_task, "train"), args)  # -sc install/uninstall


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
    exits.set_command(command)
    # Ctrl-C from here on, the heavy imports included, exits cleanly; the training loop takes over while it runs.
    old_handlers = exits.guard_signals()
    if argv is None:
        old_handlers = {}  # the program itself: keep them to the end, interpreter shutdown included
    try:
        return COMMANDS[command](rest)
    except Exception as ex:  # every fault leaves in one place: one line and its exit code
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        return exits.fail(command, ex)
    except KeyboardInterrupt as ex:  # a second Ctrl-C in the loop: it saved what it could
        return exits.fail(command, ex)
    except SystemExit as ex:  # the task's own exit codes (diverged 3, interrupted 130/143), as a return value
        if isinstance(ex.code, str):
            print(ex.code, file=sys.stderr)
        return ex.code if isinstance(ex.code, int) else int(ex.code is not None)
    finally:
        from . import run_lock
        from .train import data_cache

        run_lock.release_held()
        data_cache.forget_loaded()  # the data set kept for the runs of this command
        exits.restore_signals(old_handlers)


if __name__ == "__main__":
    sys.exit(main())
