"""skipbench's submitit launchers; Hydra takes launcher classes only from the ``hydra_plugins`` package.

The work is in :mod:`skipbench.launcher`; these only bind it to the plugin's SLURM and local launchers.
Defined only where hydra-submitit-launcher is installed (``skipbench[cluster]``), so Hydra's plugin scan
stays quiet without it.
"""

from __future__ import annotations

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
except ImportError:  # pragma: no cover - the cluster extra is not installed
    pass
else:
    from skipbench.launcher import Accounting, call_with_requeue_after_stop, fit_slurm_request

    class SkipbenchSlurmLauncher(Accounting, SlurmLauncher):
        """``hydra/launcher=slurm``: fits the partition, resume=auto, every job accounted for."""

        def _fit(self) -> None:
            fit_slurm_request(self)

        def __call__(self, *args, **kwargs):  # in the job
            return call_with_requeue_after_stop(lambda: SlurmLauncher.__call__(self, *args, **kwargs))

    class SkipbenchLocalLauncher(Accounting, LocalLauncher):
        """``hydra/launcher=local``: submitit's local executor (no SLURM), every job accounted for."""
