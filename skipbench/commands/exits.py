"""Every fault of a command leaves in one place: one line naming the bad value, and an exit code.

Exit codes: 0 done (or nothing to do), 1 the system failed us (disk full, a file that cannot be
written), 2 a user mistake (any :class:`~skipbench.errors.SkipbenchError`, one line), 3 the run
diverged, 130 Ctrl-C, 143 SIGTERM. Any other traceback is a bug (it re-raises: the trace is what helps).

Imports nothing heavy at module level: ``skipbench.cli`` installs the signal guard from here before
torch and Hydra load.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import signal
import sys

from .. import run_lock
from ..errors import SkipbenchError
from ..run_folder import FAILED, INTERRUPTED

_COMMAND = ["skipbench"]  # "skipbench train" once known: the prefix of every line we print


def set_command(command: str) -> None:
    """Name the command in the lines printed from here on (``skipbench train: ...``)."""
    _COMMAND[0] = f"skipbench {command}"


def _exit_on_signal(signum: int, frame) -> None:
    """Ctrl-C / SIGTERM outside the training loop: nothing to save, so leave at once.

    Raising KeyboardInterrupt into an import or a library that catches it leaves half-imported modules
    and double tracebacks behind (or is swallowed); ``os._exit`` cannot be caught. A run folder this
    process made and left empty is removed first. The training loop installs its own handler.
    """
    run_lock.abandon_held(INTERRUPTED, f"{signal.Signals(signum).name} before the run started")
    os.write(2, f"{_COMMAND[0]}: interrupted ({signal.Signals(signum).name})\n".encode())
    os._exit(128 + signum)


def guard_signals() -> dict:
    """Route SIGINT/SIGTERM to :func:`_exit_on_signal`; returns the old handlers (to restore)."""
    old = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, _exit_on_signal)
    except ValueError:  # not the main thread
        pass
    return old


def restore_signals(old: dict) -> None:
    for sig, handler in old.items():
        signal.signal(sig, handler)


def _first_line(ex: BaseException) -> str:
    return str(ex).strip().splitlines()[0] if str(ex).strip() else type(ex).__name__


def describe_error(ex: BaseException) -> str:
    """One line naming the bad value and what is allowed."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

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
    from hydra.errors import HydraException, InstantiationException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    ours = _user_error(ex)
    if ours is not None:
        return str(ours), ours.exit_code
    cause = ex
    while isinstance(cause, HydraException) and cause.__cause__ is not None:  # "Error in call to target"
        cause = cause.__cause__
    system = isinstance(cause, OSError) and not isinstance(cause, HydraException)  # Hydra's missing config is one
    if cause is not ex and isinstance(ex, InstantiationException) and not system \
            and not isinstance(cause, (HydraException, OmegaConfBaseException)):
        return constructor_failure(ex, cause), 2
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


def constructor_failure(ex: BaseException, cause: BaseException) -> str:
    """``dataset (skipbench.data.folder.folder) failed: MemoryError: ...``: what Hydra's "Error in call to
    target '...':" wraps, in one line: the config key, the target and the cause (its trace with
    ``HYDRA_FULL_ERROR=1``)."""
    text = str(ex)
    target = re.search(r"target '([^']+)'", text)
    key = re.search(r"full_key: (\S+)", text)
    where = " ".join(x for x in (key[1] if key else "", f"({target[1]})" if target else "") if x) or "a constructor"
    return f"{where} failed: {type(cause).__name__}: {_first_line(cause)}"


def fail(command: str, ex: BaseException) -> int:
    """Print the fault's one line, mark or remove the run folder it leaves, return the exit code."""
    found = explain(command, ex)
    if found is None:
        raise ex
    msg, code = found
    run_lock.abandon_held(INTERRUPTED if code == 130 else FAILED, msg)
    prefix = f"skipbench {command}: " if code == 130 else f"skipbench {command}: error: "
    print(prefix + one_line(msg), file=sys.stderr)
    return code
