"""Peak memory of one run, for ``metrics.json`` and the report.

CUDA: the allocator's peak (``max_memory_allocated``), reset when the run starts. CPU: the process's
peak resident set size. Linux lets a process reset its own peak (``/proc/self/clear_refs``, then
``VmHWM``), so a run that shares its process with earlier ones (a sweep under Hydra's basic launcher,
a test session) still gets its own peak; elsewhere it falls back to ``getrusage``'s ``ru_maxrss``,
which is per process and never falls -- the kind names which one a figure is. RSS includes the
interpreter and torch's libraries (a few hundred MB), and memory the C allocator kept from an earlier
run of the same process (freed, not returned): compare runs made in separate processes (a joblib or
submitit sweep, separate commands), and on CUDA, where the allocator's own peak is exact.
"""

from __future__ import annotations

import ctypes
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch

_PROC = Path("/proc/self")


_KEPT = False


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the OS (once per process).

    A training step frees and re-allocates the same large activation buffers. glibc serves big ones with
    ``mmap`` and returns them (and trims its heap) on free, so every step faults the pages in again: a
    densenet ran at 11 instead of 16.5 steps/s as the fifth job of the README's sweep (measured on 2 cores,
    scripts/bench.py's machine). Fixing the mmap and trim thresholds (what ``MALLOC_MMAP_THRESHOLD_`` /
    ``MALLOC_TRIM_THRESHOLD_`` set at start-up) keeps the pages; the cost is a higher resident size.
    Returns whether it applied (Linux with glibc only)."""
    global _KEPT
    if _KEPT or not sys.platform.startswith("linux"):
        return _KEPT
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
    _KEPT = bool(mallopt(M_MMAP_THRESHOLD, 256 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))
    return _KEPT

def reset_peak(device: torch.device) -> None:
    """Start this run's peak from what is in use now."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        (_PROC / "clear_refs").write_text("5")  # 5: reset the peak RSS (Linux >= 4.0)
    except OSError:
        pass


def peak_mb(device: torch.device) -> tuple[float | None, str]:
    """``(MiB, kind)``: kind is ``cuda_max_allocated``, ``cpu_peak_rss`` (this run) or ``cpu_peak_rss_process``."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1), "cuda_max_allocated"
    try:
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1), "cpu_peak_rss"  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None, "unknown"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1), "cpu_peak_rss_process"  # bytes on macOS, KiB else


@contextmanager
def saved_tensor_bytes(model: torch.nn.Module) -> Iterator[Callable[[], int]]:
    """Count the bytes of the tensors autograd saves for backward inside the block, once per storage,
    the model's parameters left out; yields a function that returns the count so far."""
    storages: dict[tuple[int, str], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "meta":
            try:
                key = (t.untyped_storage().data_ptr(), t.device.type)
                storages[key] = max(storages.get(key, 0), t.untyped_storage().nbytes())
            except RuntimeError:  # tensors without storage (sparse, ...): count their elements
                storages[(id(t), "x")] = t.numel() * t.element_size()
        return t

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield lambda: sum(n for (ptr, _), n in storages.items() if ptr not in params)


def saved_activations_mb(model: torch.nn.Module, inputs: torch.Tensor, autocast=None) -> float:
    """MiB of the tensors autograd keeps for backward in one training forward of ``inputs`` ``[B, C, H, W]``
    (parameters left out): the activation memory a variant's skips cost, exact and the same on every
    device -- what the peak figures above measure only with the allocator's and the process's noise.
    Run in eval mode so batch-norm statistics are not touched (it saves the same tensors)."""
    from contextlib import nullcontext

    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), saved_tensor_bytes(model) as saved, (autocast or nullcontext)():
            model(inputs)
    finally:
        model.train(was_training)
    return round(saved() / 2**20, 2)
