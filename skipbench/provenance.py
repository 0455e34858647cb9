"""What it takes to reproduce a run, beyond its config: versions, the code's git commit, the machine.

Collected once per process by the caller of the training loop (the CLI's task, the Python API), so the
loop never runs ``git`` itself.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


def git_state(where: Path | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the checkout holding skipbench's code; ``(None, None)`` outside git."""
    here = str(where or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit = dirty = None
    return commit, dirty


def provenance() -> dict[str, Any]:
    """Versions, git state, platform and command line, for ``run_info.json``."""
    import torch

    from . import __version__

    commit, dirty = git_state()
    return {"skipbench": __version__, "git_commit": commit, "git_dirty": dirty, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "host": platform.node(),
            "argv": list(sys.argv)}
