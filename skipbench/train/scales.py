"""Kept so old imports work: the gradient colour scale lives in :mod:`skipbench.figures`."""

from ..figures import GRAD_LOG10_RANGE, MISSING, OVER, UNDER, grad_cmap, grad_colorbar  # noqa: F401
