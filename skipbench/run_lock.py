"""The run-folder lock: a run folder this process holds, made, locked and cleaned up after a failure.

``claim_run_folder`` makes (or, on resume, opens) a run folder and takes an exclusive lock on it for
the process's lifetime (released by the kernel if the process dies, so kill -9 leaves no stale lock);
``abandon_held`` removes the folders a failure leaves empty, or marks them failed. The names inside a
run folder are :mod:`skipbench.run_folder`'s; this module only guards the folder.

Imports nothing heavy: the CLI's signal handler and error path use it before anything is loaded.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RunFolderError
from .run_folder import CHECKPOINT, HYDRA_DIR, HYDRA_LOG, METRICS, PROBE, write_json

HYDRA_ONLY = {HYDRA_DIR, HYDRA_LOG}  # what Hydra writes before our task runs
SWEEP_KEY = "hydra.sweep.dir"


@dataclass
class RunFolderLock:
    """A run folder this process holds: locked, and removed again if a failure leaves it empty."""

    path: Path
    resume: bool
    created: list[Path] = field(default_factory=list)  # folders this process made, deepest first
    fd: int | None = None
    key: str = "hydra.run.dir"  # the setting that names the folder, for the error line

    def lock(self) -> None:
        """Exclusive, non-blocking ``flock`` on the folder itself: no lock file, nothing stale after kill -9."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            what = "sweep" if self.key == SWEEP_KEY else "run"
            raise RunFolderError(f"{self.path}: another skipbench {what} is using this {what} folder; wait for it "
                                 f"to finish or choose another {self.key}") from None
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
                write_json(self.path / METRICS, {"status": status, "error": error})
        except OSError:
            pass  # a full or read-only disk: nothing more to do, the error line has been printed


_HELD: dict[str, RunFolderLock] = {}


def claim_run_folder(run_dir: Path, resume: bool) -> RunFolderLock:
    """Make (or, on resume, open) the run folder and lock it; refuse a read-only, busy or used one."""
    run_dir = Path(run_dir).absolute()
    try:
        return _claim(run_dir, resume)
    except OSError as ex:  # a name too long for the file system, say
        raise RunFolderError(f"hydra.run.dir={run_dir}: cannot use it ({ex.strerror or ex})") from None


def _claim(run_dir: Path, resume: bool) -> RunFolderLock:
    if str(run_dir) in _HELD:
        return _HELD[str(run_dir)]
    if resume:
        if not os.access(run_dir, os.W_OK):
            raise RunFolderError(f"{run_dir}: the run folder is read-only; a resume must write into it "
                                 "(copy it somewhere writable and resume the copy)")
    else:
        if (run_dir / PROBE).exists():
            raise RunFolderError(f"hydra.run.dir={run_dir}: already holds a probe (its {PROBE}); choose another folder")
        if run_dir.is_dir() and any((run_dir / name).exists() for name in (CHECKPOINT, METRICS)):
            raise RunFolderError(f"hydra.run.dir={run_dir}: already holds a run; continue it with resume={run_dir} "
                                 "or choose another folder")
        existing = next(p for p in [run_dir, *run_dir.parents] if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise RunFolderError(f"hydra.run.dir={run_dir}: cannot create it, {existing} is "
                                 f"{'not a folder' if not existing.is_dir() else 'read-only'}; "
                                 "choose a writable folder with hydra.run.dir=...")
    folder = RunFolderLock(run_dir, resume)
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


def claim_sweep_folder(sweep_dir: Path) -> RunFolderLock:
    """Make the sweep folder and lock it for the sweep's lifetime, before Hydra writes into it: two
    sweeps into one folder cannot mix. A folder that holds a single run is refused."""
    sweep_dir = Path(sweep_dir).absolute()
    if str(sweep_dir) in _HELD:
        return _HELD[str(sweep_dir)]
    if any((sweep_dir / name).exists() for name in (CHECKPOINT, METRICS, PROBE)):
        raise RunFolderError(f"{SWEEP_KEY}={sweep_dir}: holds a single run, not a sweep; choose another folder")
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(sweep_dir, os.W_OK):
            raise RunFolderError(f"{SWEEP_KEY}={sweep_dir}: the folder is read-only; choose a writable one")
        folder = RunFolderLock(sweep_dir, resume=True, key=SWEEP_KEY)  # resume: never removed on failure
        folder.lock()
    except OSError as ex:
        raise RunFolderError(f"{SWEEP_KEY}={sweep_dir}: cannot use it ({ex.strerror or ex})") from None
    return folder


def held_folders() -> list[RunFolderLock]:
    """The run folders this process holds now."""
    return list(_HELD.values())


def abandon_held(status: str, error: str) -> None:
    """A failure or a signal before the run could start: clean up every folder held (see ``abandon``)."""
    for folder in held_folders():
        folder.abandon(status, error)


def release_held() -> None:
    """Drop every lock this process holds (the end of a command)."""
    for folder in held_folders():
        folder.release()
