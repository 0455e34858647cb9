"""Per-layer cost table (torchinfo-like): output shape, parameters, forward FLOPs and saved activation
bytes of every weight layer, named and ordered as its TensorBoard tags (:func:`~.diagnostics.skeleton_layers`).

FLOPs come from torch's ``FlopCounterMode`` (as :func:`~.diagnostics.count_flops`), read per module; saved
bytes from :func:`~.memory.saved_tensor_bytes`'s hook, each tensor autograd saves charged to the weight
layer that ran last before it was saved (so a decoder conv's row holds what its input costs -- a concat
skip's wider input shows there -- and the rows sum to the run's ``activations_mb``; the row ``(input)``
holds what is saved before the first layer). Per sample: one image ``[1, C, H, W]``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .diagnostics import skeleton_layers

INPUT_ROW = "(input)"


@dataclass
class LayerRow:
    layer: str  # the TensorBoard name, e.g. 05_dec1/conv1
    kind: str  # the module's class, e.g. Conv2d
    output_shape: list[int]  # one sample's output [C, H, W] (or [features])
    params: int  # the layer's own parameters (weight and bias)
    flops: int  # forward FLOPs for one sample (2 per multiply-add)
    saved_bytes: int  # bytes autograd keeps for backward, charged to this layer (one sample)


def layer_table(model: nn.Module, sample: torch.Tensor) -> list[LayerRow]:
    """One row per weight layer of ``model`` (depth order) for ``sample`` ``[1, C, H, W]``, then ``(input)``."""
    from torch.utils.flop_counter import FlopCounterMode

    layers, _ = skeleton_layers(model)
    path_of = {id(m): p for p, m in model.named_modules()}
    shapes: dict[str, list[int]] = {}
    current = [INPUT_ROW]
    saved: dict[str, int] = {}
    seen: set[tuple[int, str]] = set()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pre_hook(name):
        def hook(module, args):
            current[0] = name
        return hook

    def post_hook(name):
        def hook(module, args, out):
            shapes.setdefault(name, list(out.shape[1:]) if isinstance(out, torch.Tensor) else [])
        return hook

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            nbytes = t.untyped_storage().nbytes()
        except RuntimeError:
            key, nbytes = (id(t), "x"), t.numel() * t.element_size()
        if key[0] not in params and key not in seen:  # once per storage, as memory.saved_tensor_bytes
            seen.add(key)
            saved[current[0]] = saved.get(current[0], 0) + nbytes
        return t

    hooks = []
    for name, m in layers:
        hooks += [m.register_forward_pre_hook(pre_hook(name)), m.register_forward_hook(post_hook(name))]
    was_training = model.training
    model.eval()  # batch-norm statistics untouched; it saves the same tensors
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(sample)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(sample)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    counts = counter.get_flop_counts()
    root = type(model).__name__
    rows = []
    for name, m in layers:
        flops = sum(counts.get(f"{root}.{path_of[id(m)]}", {}).values())
        rows.append(LayerRow(name, type(m).__name__, shapes.get(name, []),
                             sum(p.numel() for p in m.parameters(recurse=False)), int(flops), saved.get(name, 0)))
    rows.append(LayerRow(INPUT_ROW, "", list(sample.shape[1:]), 0, 0, saved.get(INPUT_ROW, 0)))
    return rows


def rows_json(rows: list[LayerRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def render(rows: list[LayerRow], title: str = "") -> str:
    """A markdown table with a total row (also TensorBoard's Text tab)."""
    head = ["| layer | kind | output shape | params | MFLOPs | saved KiB |", "|:--|:--|:--|--:|--:|--:|"]
    body = [f"| {r.layer} | {r.kind} | {'x'.join(map(str, r.output_shape))} | {r.params:,} | {r.flops / 1e6:.3f} | "
            f"{r.saved_bytes / 1024:.1f} |" for r in rows]
    total = (f"| **total** | | | {sum(r.params for r in rows):,} | {sum(r.flops for r in rows) / 1e6:.3f} | "
             f"{sum(r.saved_bytes for r in rows) / 1024:.1f} |")
    note = "Per sample (one image); saved = tensors autograd keeps for backward, charged to the layer that ran last."
    return "\n".join(([f"### {title}", ""] if title else []) + head + body + [total, "", note]) + "\n"
