"""TensorBoard writing: scalars, image grids and HParams, all into the run's own folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries


def image_grid(rows: Iterable[torch.Tensor], pad: int = 2, min_size: int = 64) -> torch.Tensor:
    """Rows of ``[N, C, H, W]`` images in [0, 1] -> one ``[C, R*(H+pad), N*(W+pad)]`` grid.

    Small images are enlarged (nearest neighbour) to at least ``min_size`` pixels, so a 32x32
    sample is not a speck in the dashboard.
    """
    rows = [r.detach().float().cpu() for r in rows]
    scale = max(1, -(-min_size // rows[0].shape[-1]))
    if scale > 1:
        rows = [F.interpolate(r, scale_factor=scale, mode="nearest") for r in rows]
    rows = [F.pad(r, (0, pad, 0, pad), value=1.0) for r in rows]
    n, c, h, w = rows[0].shape
    grid = torch.stack(rows)  # [R, N, C, H, W]
    return grid.permute(2, 0, 3, 1, 4).reshape(c, len(rows) * h, n * w).clamp(0, 1)


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Nested config -> ``{"model.depth": 3, ...}`` with only the value types HParams accepts."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in cfg.items():
        if str(key).startswith("_"):  # _target_, _partial_, _convert_: how to build, not what
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif value is not None:
            out[name] = str(value)
    return out


class TBLogger:
    """Thin wrapper over one ``SummaryWriter`` writing into ``run_dir`` itself."""

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        # purge_step: on resume, TensorBoard drops events at or after this step from earlier files,
        # so the curve continues without a doubled tail.
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def images(self, tag: str, rows: list[torch.Tensor], step: int) -> None:
        self.writer.add_image(tag, image_grid(rows), step, dataformats="CHW")

    def figures(self, figures: Mapping[str, Any], step: int) -> None:
        for tag, fig in figures.items():
            self.writer.add_figure(tag, fig, step, close=True)

    def layout(self, layout: dict) -> None:
        self.writer.add_custom_scalars(layout)

    def hparams(self, params: Mapping[str, Any], metrics: list[str]) -> None:
        """Write the HParams experiment and session start into this run's own event file.

        ``SummaryWriter.add_hparams`` would create a sub-folder per call, which the dashboard then
        shows as a separate run without our scalars; writing the summaries ourselves keeps one run.
        The metric values are read by TensorBoard from the scalar tags named in ``metrics``.
        """
        exp, ssi, self._session_end = hparams_summaries(dict(params), {m: 0.0 for m in metrics})
        self.writer.file_writer.add_summary(exp)
        self.writer.file_writer.add_summary(ssi)

    def close(self, finished: bool = True) -> None:
        if finished and getattr(self, "_session_end", None) is not None:
            self.writer.file_writer.add_summary(self._session_end)
        self.writer.flush()
        self.writer.close()
