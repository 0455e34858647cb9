"""The ``debug=`` presets' knobs (lightning-hydra-template's debug configs), as the loop applies them.

``trainer.overfit_batches=N``: train on the first N batches over and over and validate on the same
images (a model that cannot drive their loss down has a bug); ``trainer.data_fraction=f``: the first
fraction of both splits; ``trainer.detect_anomaly``: autograd's anomaly mode names the forward op
whose backward made a NaN/inf; ``trainer.profile_steps=K``: torch.profiler records K steps after one
to wait and one to warm up, written as a Chrome trace (``<run>/profile/*.pt.trace.json``: open it at
https://ui.perfetto.dev or chrome://tracing) and a table of the costliest ops (``profile/ops.txt``).
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import ConfigError
from ..run_folder import PROFILE_DIR, PROFILE_OPS

PROFILE_WAIT, PROFILE_WARMUP = 1, 1  # steps before recording: the first step pays for allocations


def trim(data: Any, trainer: Any) -> Any:
    """The data set the run trains on: all of it, the first ``data_fraction`` of each split, or (overfit)
    the first ``overfit_batches * batch_size`` training images as both splits."""
    n_overfit = int(trainer.get("overfit_batches", 0) or 0)
    fraction = float(trainer.get("data_fraction", 1.0))
    if n_overfit:
        n = n_overfit * int(trainer.batch_size)
        if n > len(data.train):
            raise ConfigError(f"trainer.overfit_batches={n_overfit}: needs {n} training images "
                              f"({n_overfit} x trainer.batch_size={trainer.batch_size}); the data set has {len(data.train)}")
        few = data.train.take(slice(0, n))
        return dataclasses.replace(data, train=few, val=few)
    if fraction < 1.0:
        first = lambda split: split.take(slice(0, max(1, math.ceil(fraction * len(split)))))  # noqa: E731
        return dataclasses.replace(data, train=first(data.train), val=first(data.val))
    return data


def anomaly_mode(trainer: Any):
    """Autograd's anomaly detection while training, when asked for (several times slower)."""
    return torch.autograd.detect_anomaly(check_nan=True) if trainer.get("detect_anomaly") else nullcontext()


def anomaly_error(ex: RuntimeError) -> str | None:
    """The first line of anomaly mode's error ("Function 'SqrtBackward0' returned nan values ..."), else None."""
    text = str(ex).strip().splitlines()[0] if str(ex).strip() else ""
    return text if "returned nan values" in text or "returned inf values" in text else None


@contextmanager
def profiler(trainer: Any, run_dir: Path) -> Iterator[Any]:
    """A torch.profiler over ``profile_steps`` steps (call ``.step()`` after each), or a stand-in that does nothing."""
    steps = int(trainer.get("profile_steps", 0) or 0)
    if not steps:
        yield None
        return
    from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    out = Path(run_dir) / PROFILE_DIR
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, schedule=schedule(wait=PROFILE_WAIT, warmup=PROFILE_WARMUP, active=steps,
                                                          repeat=1),
                 on_trace_ready=tensorboard_trace_handler(str(out)), record_shapes=True) as prof:
        yield prof
    try:
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    except Exception:  # no step was recorded (a run stopped early)
        return
    (out / PROFILE_OPS).write_text(table + "\n")
