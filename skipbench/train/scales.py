"""The one colour scale of every gradient-flow picture (each run's and the report's).

log10 of a gradient L2 norm on a fixed range, so one colour means one value in every variant's
picture; values beyond it are clipped *visibly* (their own colours, arrows on the colour bar).
Matplotlib only (no pyplot), so the report can use it without the training stack.
"""

from __future__ import annotations

GRAD_LOG10_RANGE = (-6.0, 1.0)  # 1e-6 (vanished) .. 10 (exploding)
UNDER, OVER, MISSING = "#ff00ff", "#ff2020", "white"


def grad_cmap():
    """viridis, with values below / above :data:`GRAD_LOG10_RANGE` in magenta / red, NaN in white."""
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(under=UNDER, over=OVER, bad=MISSING)


def grad_colorbar(fig, image, ax) -> None:
    """The colour bar of a gradient-flow heat map: the fixed range, and how clipped values show."""
    lo, hi = GRAD_LOG10_RANGE
    bar = fig.colorbar(image, ax=ax, extend="both")
    bar.set_label(f"log10 ||grad||, fixed range [{lo:g}, {hi:g}] for every run\n"
                  f"magenta: below {lo:g}, red: above {hi:g}, white: not logged", fontsize=8)
