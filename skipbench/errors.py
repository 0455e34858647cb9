"""One family for every mistake a user can make: the CLI prints any of them as one line, exit 2.

This module imports nothing heavy (no torch, no Hydra), so any part of skipbench (and the CLI
before it imports anything else) can raise and catch these. Subclasses of ``ValueError`` where the
old classes were, so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations


class SkipbenchError(Exception):
    """A user mistake (bad config, data, checkpoint or folder); the message is one line."""

    exit_code = 2


class ConfigError(SkipbenchError, ValueError):
    """A config value out of range, or a combination that cannot run."""


class DataError(ConfigError):
    """A missing, corrupt or unexpected data file (or data-set argument)."""


class UnknownModelError(SkipbenchError, ValueError):
    """A model name that is not registered."""


class ReportError(SkipbenchError):
    """A problem with ``skipbench report``'s input (no runs, unknown key, unknown metric)."""


class CheckpointError(SkipbenchError):
    """A checkpoint that cannot be read, or does not fit the run it should continue."""


class RunFolderError(SkipbenchError):
    """A run folder that is busy, already used, read-only or not a run folder at all."""
