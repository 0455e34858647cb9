"""TensorBoard writing: scalars, image grids and HParams, all into the run's own folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from ..run_folder import BEST_SCORE, EVENTS_PREFIX, SCORE, event_file_second, flat_items


def _uint8(images: torch.Tensor) -> "np.ndarray":
    """``[N, C, H, W]`` in [0, 1] -> ``[N, H, W, 3]`` uint8 (grey repeated to RGB)."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return (images[:, :3] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def captioned_grid(rows: list[tuple[str, torch.Tensor]], labels: list[str] | None = None,
                   legend: list[tuple[str, tuple[float, float, float]]] | None = None,
                   pad: int = 4, min_size: int = 64) -> "np.ndarray":
    """Rows ``(caption, [N, C, H, W] in [0, 1])`` -> one ``[H', W', 3]`` uint8 picture with the row
    captions on the left, ``labels`` (one per column, may hold a newline) under the last row, and a
    colour ``legend`` (name, RGB in [0, 1]) at the bottom. Small images are enlarged (nearest) to at
    least ``min_size`` px. A few ms with PIL: cheap enough for every eval.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    scale = max(1, -(-min_size // rows[0][1].shape[-1]))
    images = [_uint8(F.interpolate(r.float(), scale_factor=scale, mode="nearest") if scale > 1 else r) for _, r in rows]
    n, h, w, _ = images[0].shape
    font = ImageFont.load_default(size=13)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    size = lambda text: draw.multiline_textbbox((0, 0), text, font=font)[2:]  # noqa: E731
    left = max(size(c)[0] for c, _ in rows) + 2 * pad
    cell_w = max([w] + [size(t)[0] for t in labels or []]) + pad
    label_h = max([size(t)[1] for t in labels or []] + [0]) + (pad if labels else 0)
    legend_h = 16 + pad if legend else 0
    width = max(left + n * cell_w, left + sum(size(name)[0] + 22 for name, _ in legend or []))
    canvas = Image.new("RGB", (width, len(rows) * (h + pad) + label_h + legend_h + pad), "white")
    pen = ImageDraw.Draw(canvas)
    for r, ((caption, _), block) in enumerate(zip(rows, images)):
        y = pad + r * (h + pad)
        pen.text((pad, y + h // 2), caption, fill="black", font=font, anchor="lm")
        for i in range(n):
            canvas.paste(Image.fromarray(np.ascontiguousarray(block[i])), (left + i * cell_w + (cell_w - w) // 2, y))
    y = pad + len(rows) * (h + pad)
    for i, text in enumerate(labels or []):
        pen.multiline_text((left + i * cell_w + cell_w // 2, y), text, fill="black", font=font, anchor="ma", align="center")
    x, y = left, y + label_h
    for name, rgb in legend or []:
        pen.rectangle((x, y, x + 12, y + 12), fill=tuple(int(255 * c) for c in rgb), outline="grey")
        pen.text((x + 16, y + 6), name, fill="black", font=font, anchor="lm")
        x += size(name)[0] + 22
    return np.asarray(canvas)


def flatten(cfg: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """Nested config -> ``{"model.depth": 3, ...}`` with only the value types HParams accepts
    (``None`` left out, anything else as its text)."""
    return {key: value if isinstance(value, (bool, int, float, str)) else str(value)
            for key, value in flat_items(cfg) if value is not None}


# The HParams metrics of every run (tag, column name, description): only those EVERY run logs, whatever its
# task. TensorBoard keeps one run's experiment summary for the whole log folder, and its parallel-coordinates
# and scatter views drop every session that lacks a declared metric: one declared per-task column (val miou
# in a denoise sweep) would empty them. ``hparams/score`` is the headline metric under one name, so runs
# of different tasks share one axis; the per-task metrics stay in the scalars (``metric/val_*``).
HPARAM_METRICS = [
    (SCORE, "score", "the task's headline validation metric, higher is better: "
     "PSNR (dB) for reconstruct/denoise, mIoU for segment, accuracy for classify"),
    (BEST_SCORE, "best score", "best headline validation metric so far"),
]


def task_layout(task: str, loss: str, metrics: Iterable[str]) -> dict:
    """Custom-scalars category of a task's loss and metrics; its title names the task, so runs of
    different tasks never merge charts. One tag per chart, so a chart draws one line per run (a sweep's
    variants side by side, nothing else): the train and the val loss apart, each metric alone, PSNRs
    titled in dB. (Best-so-far curves stay in Time Series, ``metric/best_val_*``.)"""
    charts = {f"loss ({loss}): train": ["Multiline", [rf"^loss/{loss}/train$"]],
              f"loss ({loss}): val": ["Multiline", [rf"^loss/{loss}/val$"]]}
    for m in metrics:
        charts[f"{m} (dB)" if m.endswith("psnr") else m] = ["Multiline", [rf"^metric/val_{m}$"]]
    return {f"{task}: loss and metrics": charts}


MAX_LINES = 8  # lines (or bands) of one run a custom-scalars chart may draw: more and colours repeat


def chunked(title: str, items: list, size: int = MAX_LINES) -> list[tuple[str, list]]:
    """``items`` in charts of at most ``size``: ``[(title, items)]``, or ``title (1/3)`` ... when split."""
    parts = [items[i:i + size] for i in range(0, len(items), size)] or [[]]
    return [(title if len(parts) == 1 else f"{title} ({i + 1}/{len(parts)})", part) for i, part in enumerate(parts)]


def custom_scalars(layout: Mapping[str, Mapping[str, Any]], closed: Iterable[str] = ()) -> Summary:
    """The custom-scalars layout summary: ``{category: {chart: ["Multiline", [regex, ...]] or
    ["Margin", [(value, lower, upper), ...]]}}``, categories in the order given, those in ``closed``
    collapsed. (torch's ``add_custom_scalars`` takes one margin series per chart and no ``closed``.)"""
    from tensorboard.compat.proto.summary_pb2 import SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.custom_scalar import layout_pb2

    closed = set(closed)
    categories = []
    for title, charts in layout.items():
        out = []
        for name, (kind, tags) in charts.items():
            if kind == "Margin":
                series = [layout_pb2.MarginChartContent.Series(value=v, lower=lo, upper=hi) for v, lo, hi in tags]
                out.append(layout_pb2.Chart(title=name, margin=layout_pb2.MarginChartContent(series=series)))
            else:
                out.append(layout_pb2.Chart(title=name, multiline=layout_pb2.MultilineChartContent(tag=list(tags))))
        categories.append(layout_pb2.Category(title=title, chart=out, closed=title in closed))
    tensor = TensorProto(dtype="DT_STRING", string_val=[layout_pb2.Layout(category=categories).SerializeToString()],
                         tensor_shape=TensorShapeProto())
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="custom_scalars"))
    return Summary(value=[Summary.Value(tag="custom_scalars__config__", tensor=tensor, metadata=meta)])


def _after_earlier_event_files(run_dir: Path) -> None:
    """Wait, if need be, until a new event file's name sorts after the folder's earlier ones.

    TensorBoard reads a folder's event files in name order, ``<prefix>.<second>.<host>.<pid>.<n>``: a
    resumed writer opened in the same second as an earlier one can sort before it (``.10`` before ``.9``)
    and its events be read first. Only a resume within the second its run started waits (under a second):
    in one process, as tests do; a resume from the command line starts seconds later.
    """
    seconds = [event_file_second(p.name) for p in run_dir.glob(f"{EVENTS_PREFIX}.*")]
    newest = max((s for s in seconds if s is not None), default=None)
    if newest is not None and newest >= int(time.time()):
        time.sleep(newest + 1 - time.time())


class TBLogger:
    """Thin wrapper over one ``SummaryWriter`` writing into ``run_dir`` itself."""

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        # purge_step: on resume, TensorBoard drops events at or after this step from earlier files,
        # so the curve continues without a doubled tail.
        if purge_step is not None:
            _after_earlier_event_files(Path(run_dir))
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """All values in one event: ``add_scalar`` costs ~50 us a call (its own event and summary each),
        which at ~75 tags a step is ~5 % of a small model's step; one summary of them all is ~8x cheaper."""
        if values:
            self.writer.file_writer.add_summary(
                Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()]), step)

    def images(self, tag: str, rows: list[tuple[str, torch.Tensor]], step: int, labels: list[str] | None = None,
               legend: list[tuple[str, tuple[float, float, float]]] | None = None) -> None:
        """A captioned grid (:func:`captioned_grid`): row captions, per-column labels, a legend."""
        self.writer.add_image(tag, captioned_grid(rows, labels, legend), step, dataformats="HWC")

    def figures(self, figures: Mapping[str, Any], step: int) -> None:
        """Matplotlib figures as images. Drawn here on their own Agg canvas: ``add_figure`` would import
        pyplot (and close each figure through its registry)."""
        if not figures:
            return  # most evals draw nothing: matplotlib is not even imported then
        from ..figures import to_rgb

        for tag, fig in figures.items():
            self.writer.add_image(tag, to_rgb(fig), step, dataformats="HWC")

    def text(self, tag: str, markdown: str, step: int) -> None:
        self.writer.add_text(tag, markdown, step)

    def histograms(self, values: Mapping[str, torch.Tensor], step: int) -> None:
        for tag, tensor in values.items():
            self.writer.add_histogram(tag, tensor.detach().float().cpu(), step)

    def layout(self, layout: dict, closed: Iterable[str] = ()) -> None:
        """The custom-scalars layout (:func:`custom_scalars`), categories in order, ``closed`` collapsed."""
        self.writer.file_writer.add_summary(custom_scalars(layout, closed))

    def hparams(self, params: Mapping[str, Any]) -> None:
        """Write the HParams experiment and session start into this run's own event file.

        ``SummaryWriter.add_hparams`` would create a sub-folder per call, which the dashboard then
        shows as a separate run without our scalars; writing the summaries ourselves keeps one run.
        Every run, whatever its task, declares the same metrics (:data:`HPARAM_METRICS`, those every run
        logs): TensorBoard keeps one run's experiment summary for the whole log folder, and it then fits every run.
        TensorBoard reads the metric values from the run's scalars with those tags.
        """
        from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

        exp, ssi, self._session_end = hparams_summaries(dict(params), {tag: 0.0 for tag, _, _ in HPARAM_METRICS})
        # torch's helper takes no column names: add them to the experiment it built
        data = HParamsPluginData.FromString(exp.value[0].metadata.plugin_data.content)
        for info, (tag, name, text) in zip(data.experiment.metric_infos, HPARAM_METRICS):
            assert info.name.tag == tag
            info.display_name, info.description = name, text
        exp.value[0].metadata.plugin_data.content = data.SerializeToString()
        self.writer.file_writer.add_summary(exp)
        self.writer.file_writer.add_summary(ssi)

    def close(self, finished: bool = True) -> None:
        if finished and getattr(self, "_session_end", None) is not None:
            self.writer.file_writer.add_summary(self._session_end)
        self.writer.flush()
        self.writer.close()
