"""Kept so old imports work: the figures live in :mod:`skipbench.figures` (one module for the loop,
the tasks and the report)."""

from ..figures import confusion_matrix, grad_flow_heatmap, grad_norm_by_depth  # noqa: F401
