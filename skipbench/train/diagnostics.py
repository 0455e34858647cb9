"""Diagnostics the loop calls as hooks; they see only named layers ordered by depth.

The loop never knows which skip a model uses. :func:`skeleton_layers` names every weight-bearing
layer by its place in the shared skeleton, so the same layer has the same TensorBoard tag in every
variant and tags sort by depth::

    03_enc1/conv2            level 3 of the skeleton (enc0 .. enc{d-1}, bottleneck, dec{d-1} .. dec0,
                             head), main-path conv 2 of that level (convs counted across its blocks)
    03_enc1/conv2.shortcut   a layer only some variants have, named after the main-path conv where
                             its output joins the main path: it never shifts the shared names
    05_dec1/conv0_up         a decoder level's upsampling (transposed) conv
    00_enc0/conv0            a network's stem conv (``enc0.stem``: the CIFAR ResNets, DenseNet-BC)

A model that is not the skeleton (a test's two-layer net) gets its top-level children as levels.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..run_folder import (ACT_MEAN, ACT_STD, DEAD_LAYERS, GRAD_FLOW_BY_DEPTH, GRAD_FLOW_HEATMAP, GRAD_LEVEL, GRAD_MAX,
                          GRAD_NORM, GRAD_RATIO, GRAD_TOTAL, HIST_GRAD, HIST_WEIGHT, UPDATE_RATIO, WEIGHT_NORM,
                          conv_name, layer_tags, level_label, level_name, level_pattern, up_conv_name)

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
# Layers off the main path, by the attribute that holds them -> how the tag calls them.
EXTRAS = {"shortcut": "shortcut", "carry": "carry", "gate": "gate", "transition": "transition", "proj": "skip_proj"}
GRAD_LEVEL_FLOOR = 1e-20  # log10 of a zero level gradient is written as -20, not -inf


def depth_ordered_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(module path, module)`` for every conv / linear layer, in forward (registration) order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def skeleton_levels(model: nn.Module) -> dict[str, str]:
    """Top-level child -> its level tag (``03_enc1``), numbered by the shared skeleton's level order.

    For the skeleton the number comes from the level's place (enc{i} -> i, bottleneck -> d,
    dec{i} -> 2d - i, head -> 2d + 1), not from which levels this model has: a classifier without
    a decoder still calls its head ``{2d+1:02d}_head``. Other models number their children in order.
    """
    children = [n for n, m in model.named_children() if any(isinstance(x, WEIGHT_LAYERS) for x in m.modules())]
    if "bottleneck" not in children:
        return {n: level_name(i, n) for i, n in enumerate(children)}
    d = sum(bool(re.fullmatch(r"enc\d+", n)) for n in children)

    def index(name: str) -> int:
        m = re.fullmatch(r"(enc|dec)(\d+)", name)
        if m:
            return int(m[2]) if m[1] == "enc" else 2 * d - int(m[2])
        return {"bottleneck": d, "head": 2 * d + 1}.get(name, 2 * d + 2)

    return {n: level_name(index(n), n) for n in children}


def _extra(parts: list[str]) -> str | None:
    for part in parts:
        if part in EXTRAS:
            return EXTRAS[part]
    return None


def skeleton_layers(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], dict[str, str]]:
    """Stable names of the weight layers, sorted (= by depth), and of the blocks (module path -> name).

    Inside a level, main-path convs are numbered ``conv1, conv2, ...`` across its blocks in forward
    order (a dense block's layers count like a plain block's two convs, a highway block's transform
    convs like a plain block's), zero-padded when a level has ten or more. A block is named after its
    last main-path conv (its output), which is what the activation statistics use.
    """
    from ..models import BLOCKS

    levels = skeleton_levels(model)
    blocks = [n for n, m in model.named_modules() if isinstance(m, tuple(BLOCKS.values()))]
    layers = depth_ordered_layers(model)
    by_level: dict[str, list[tuple[str, nn.Module]]] = {}
    for path, m in layers:
        by_level.setdefault(path.split(".")[0], []).append((path, m))
    width = max([1] + [len(str(sum(_extra(p.split(".")) is None for p, _ in ls))) for ls in by_level.values()])
    owner = lambda path: next((b for b in blocks if path.startswith(b + ".")), None)  # noqa: E731  outermost block
    named: list[tuple[str, nn.Module]] = []
    block_names: dict[str, str] = {}
    for child, members in by_level.items():
        level = levels.get(child, child)
        if len(members) == 1 and members[0][0] == child:  # the level is one layer (the head conv)
            kind = "linear" if isinstance(members[0][1], nn.Linear) else "conv"
            named.append((f"{level}/{kind}", members[0][1]))
            continue
        count = 0  # main-path convs of this level so far
        # A block's extras join at its last main-path conv: count the block's main path first.
        last_main: dict[str, int] = {}
        for path, _ in members:
            b = owner(path)
            if b is not None and _extra(path[len(b) + 1:].split(".")) is None:
                last_main[b] = last_main.get(b, 0) + 1
        done: dict[str, int] = {}  # block -> its main-path convs named so far (level-wide numbering)
        for path, m in members:
            rel = path[len(child) + 1:]
            b = owner(path)
            if b is None:
                extra = _extra(rel.split("."))
                if rel == "up":
                    named.append((up_conv_name(level, width), m))
                elif rel.split(".")[0] == "stem":  # a network's first conv, before enc0's blocks
                    named.append((conv_name(level, 0, width), m))
                elif isinstance(m, nn.Linear) and child == "head":
                    named.append((f"{level}/linear", m))
                elif extra is None:  # a bare layer of a level (RED-Net's convs): the next main-path conv
                    count += 1
                    named.append((conv_name(level, count, width), m))
                else:
                    named.append((conv_name(level, count, width, extra), m))
                continue
            if b not in done:
                done[b] = count
                count += last_main.get(b, 0)
                block_names[b] = conv_name(level, count, width)
            extra = _extra(path[len(b) + 1:].split("."))
            if extra is None:
                done[b] += 1
                named.append((conv_name(level, done[b], width), m))
            else:
                named.append((conv_name(level, count, width, extra), m))
    return sorted(named, key=lambda x: x[0]), block_names


class GradNorms:
    """Per-layer gradient L2 norms (of each layer's weight), the total norm over all parameters and
    log10 of each skeleton level's gradient norm (over all its parameters, norm weights included).

    Call after ``backward()`` and before ``optimizer.step()`` (after unscaling, under a GradScaler).
    One fused ``torch._foreach_norm`` over all gradients; the result stays on the device as one
    ``[L + 1 + V (+ L)]`` tensor (layers by depth, total, levels by depth, and with ``grad_max`` each
    layer's max |gradient|: fused abs and max over the layers' weights), so the caller pays a
    single host transfer when it logs -- not one sync per layer or level.
    """

    def __init__(self, model: nn.Module, grad_max: bool = False) -> None:
        layers, _ = skeleton_layers(model)
        levels = skeleton_levels(model)
        self.names = [n for n, _ in layers]
        self.level_names = sorted(levels.values())
        self.tags = layer_tags(self.names, GRAD_NORM) + [GRAD_TOTAL] + layer_tags(self.level_names, GRAD_LEVEL)
        self.grad_max = grad_max
        if grad_max:
            self.tags += layer_tags(self.names, GRAD_MAX)
        self.params = [p for p in model.parameters() if p.requires_grad]
        position = {id(p): i for i, p in enumerate(self.params)}
        self.layer_list = [position[id(m.weight)] for _, m in layers]
        self.layer_index = torch.tensor(self.layer_list, dtype=torch.long)
        in_level = [(position[id(p)], self.level_names.index(levels[child]))
                    for child, mod in model.named_children() if child in levels
                    for p in mod.parameters() if id(p) in position]
        self.level_param = torch.tensor([i for i, _ in in_level], dtype=torch.long)
        self.level_of = torch.tensor([v for _, v in in_level], dtype=torch.long)

    @torch.no_grad()
    def __call__(self) -> torch.Tensor:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        norms = torch.stack(torch._foreach_norm(grads)).float()  # [P]
        total = torch.linalg.vector_norm(norms).unsqueeze(0)
        if self.layer_index.device != norms.device:  # once, not every log step
            self.layer_index, self.level_param, self.level_of = (
                t.to(norms.device) for t in (self.layer_index, self.level_param, self.level_of))
        level_sq = torch.zeros(len(self.level_names), device=norms.device).index_add_(
            0, self.level_of, norms[self.level_param].square())
        levels = level_sq.sqrt().clamp_min(GRAD_LEVEL_FLOOR).log10()
        parts = [norms[self.layer_index], total, levels]
        if self.grad_max:
            layer_grads = [grads[i] for i in self.layer_list]
            # max |g|: abs + max is ~4x faster than _foreach_norm(ord=inf) on CPU (0.54 vs 2.25 ms, width-16 U-Net)
            parts.append(torch.stack(torch._foreach_max(torch._foreach_abs(layer_grads))).float())
        return torch.cat(parts)


def count_flops(model: nn.Module, sample: torch.Tensor) -> int:
    """Forward FLOPs for one sample ``[1, C, H, W]`` (2 per multiply-add), via torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(sample)
    model.train(was_training)
    return int(counter.get_total_flops())


class Diagnostics:
    """What the loop measures besides the loss, as hooks around the optimizer step.

    Per log step (``log_now``): per-layer gradient norms (before the step), weight norms and update
    ratios ``||w_after - w_before|| / ||w_before||`` (around the step), and the first/last layer
    gradient ratio -- all reduced on the device and fetched with one transfer. Per eval: activation
    mean/std per block on a fixed probe batch, and the gradient-flow pictures.
    """

    def __init__(self, model: nn.Module, cfg, task: str | None = None) -> None:
        self.cfg, self.model, self.task = cfg, model, task  # task: its figures' fixed gradient range
        layers, blocks = skeleton_layers(model)
        self.names = [n for n, _ in layers]  # stable names, sorted = by depth
        self.weights = [m.weight for _, m in layers]
        self.blocks = [(name, model.get_submodule(path)) for path, name in blocks.items()]
        self.grad_norms = GradNorms(model, grad_max=cfg.get("grad_max", False)) if cfg.grad_norms else None
        self.zero_runs = [0] * len(self.names)  # consecutive log steps of exactly zero gradient, per layer
        self.dead: list[str] = []  # layers flagged dead (diagnostics.dead_after), in the order found
        self.flow: list[tuple[int, list[float]]] = []  # (step, per-layer grad norms) for the heat map
        self._grads = self._before = self._ratios = self._copies = None

    # ---- around the optimizer step
    def after_backward(self, log_now: bool) -> None:
        if log_now and self.grad_norms is not None:
            self._grads = self.grad_norms()

    @torch.no_grad()
    def before_step(self, log_now: bool) -> None:
        if log_now and self.cfg.update_ratios:
            if self._copies is None:  # one buffer per weight, kept: no allocation per log step
                self._copies = [torch.empty_like(w) for w in self.weights]
            torch._foreach_copy_(self._copies, self.weights)
            self._before = self._copies

    @torch.no_grad()
    def after_step(self, log_now: bool) -> None:
        if log_now and self._before is not None:
            old = torch.stack(torch._foreach_norm(self._before)).float()
            torch._foreach_sub_(self._before, self.weights)  # w_before - w_after: the update's norm
            self._ratios = torch.stack(torch._foreach_norm(self._before)).float() / old.clamp_min(1e-12)
            self._before = None

    def scalars(self, step: int) -> dict[str, float]:
        """The tags to write at a log step (one host transfer for all of them)."""
        parts, keys = [], []
        if self._grads is not None:
            g = self._grads
            n = len(self.names)
            parts += [g, (g[0] / g[n - 1].clamp_min(1e-30)).unsqueeze(0)]
            keys += self.grad_norms.tags + [GRAD_RATIO]
        if self.cfg.weight_norms:
            parts.append(torch.stack(torch._foreach_norm([w.detach() for w in self.weights])).float())
            keys += layer_tags(self.names, WEIGHT_NORM)
        if self._ratios is not None:
            parts.append(self._ratios)
            keys += layer_tags(self.names, UPDATE_RATIO)
        if not parts:
            return {}
        values = torch.cat([p.to(parts[0].device) for p in parts]).cpu().tolist()
        out = dict(zip(keys, values))
        if self._grads is not None:
            self.flow.append((step, values[: len(self.names)]))
            out.update(self._dead_layers(values[: len(self.names)]))
        self._grads = self._ratios = None
        return out

    def _dead_layers(self, norms: list[float]) -> dict[str, float]:
        """Count log steps of exactly zero gradient per layer; flag a layer (once, in the log) at ``dead_after``."""
        after = int(self.cfg.get("dead_after", 0) or 0)
        if not after:
            return {}
        import logging

        for i, (name, norm) in enumerate(zip(self.names, norms)):
            self.zero_runs[i] = self.zero_runs[i] + 1 if norm == 0.0 else 0
            if self.zero_runs[i] == after and name not in self.dead:
                self.dead.append(name)
                logging.getLogger("skipbench").warning(
                    "dead layer: %s has had exactly zero gradient for %d log steps (diagnostics.dead_after)", name, after)
        return {DEAD_LAYERS: float(sum(r >= after for r in self.zero_runs))}

    def histograms(self) -> dict[str, torch.Tensor]:
        """Per-layer weight and gradient histograms (``diagnostics.histograms``), tags by depth."""
        if not self.cfg.get("histograms", False):
            return {}
        out = {f"{HIST_WEIGHT}/{n}": w for n, w in zip(self.names, self.weights)}
        out.update({f"{HIST_GRAD}/{n}": w.grad for n, w in zip(self.names, self.weights) if w.grad is not None})
        return out

    # ---- at each eval
    @torch.no_grad()
    def activations(self, probe: torch.Tensor) -> dict[str, float]:
        """Mean and std of every block's output on the probe batch (He et al. 2016, Fig. 7)."""
        if not self.cfg.activations:
            return {}
        blocks = self.blocks
        stats: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda m, i, o: stats.append(torch.stack([o.float().mean(), o.float().std()])))
                 for _, m in blocks]
        was_training = self.model.training
        try:
            self.model.eval()
            self.model(probe)
        finally:
            self.model.train(was_training)
            for h in hooks:
                h.remove()
        if not stats:
            return {}
        values = torch.stack(stats).cpu()
        names = [n for n, _ in blocks]
        return {**dict(zip(layer_tags(names, ACT_MEAN), values[:, 0].tolist())),
                **dict(zip(layer_tags(names, ACT_STD), values[:, 1].tolist()))}

    def figures(self) -> dict[str, "object"]:
        """``z_layer/grad_flow/heatmap`` (log10 grad norm, layers x logged steps) and ``.../by_depth``."""
        if not (self.cfg.grad_flow and self.flow):
            return {}
        from ..figures import grad_flow_heatmap, grad_norm_by_depth

        steps = [s for s, _ in self.flow]
        norms = [v for _, v in self.flow]
        return {GRAD_FLOW_HEATMAP: grad_flow_heatmap(self.names, steps, norms, self.task),
                GRAD_FLOW_BY_DEPTH: grad_norm_by_depth(self.names, steps[-1], norms[-1], self.task)}

    def layout(self) -> dict:
        """TensorBoard custom-scalars categories of the diagnostics that are switched on (the detail ones,
        :func:`detail_categories`, open collapsed).

        What tells the story first: the per-level gradient norms, one chart per level (a line per run,
        the variants side by side), then the vanishing-gradient numbers. The per-layer detail follows,
        collapsed: one chart per level, never more than :data:`~skipbench.train.tb.MAX_LINES` layers of
        a run on one chart (a level with more is split). Every chart's regex names the level by its
        label (``enc1``, ``bottleneck``), so it matches every variant that has the level, whatever its
        depth; one chart never mixes kinds of quantity.
        """
        from .tb import MAX_LINES, chunked

        levels: dict[str, list[str]] = {}  # level -> its layers, by depth
        for name in self.names:
            level, _, layer = name.partition("/")
            levels.setdefault(level, []).append(layer)

        def per_level(kind: str, names: dict[str, list[str]]) -> dict:
            charts = {}
            for level, layers in names.items():
                whole = len(layers) <= MAX_LINES
                for title, part in chunked(level_label(level), layers):
                    charts[title] = ["Multiline", [level_pattern(kind, level, [] if whole else part)]]
            return charts

        layout: dict = {}
        if self.cfg.grad_norms:
            layout["gradient norm by level (log10)"] = {
                level_label(v): ["Multiline", [level_pattern(GRAD_LEVEL, v)]] for v in self.grad_norms.level_names}
            layout["vanishing gradients"] = {
                "first / last layer grad norm": ["Multiline", [f"^{GRAD_RATIO}$"]],
                "total grad norm": ["Multiline", [f"^{GRAD_TOTAL}$"]]}
            if self.cfg.get("dead_after", 0):
                layout["vanishing gradients"]["dead layers (exactly zero gradient)"] = ["Multiline", [f"^{DEAD_LAYERS}$"]]
            layout["per layer: gradient norm"] = per_level(GRAD_NORM, levels)
            if self.cfg.get("grad_max", False):
                layout["per layer: max |gradient|"] = per_level(GRAD_MAX, levels)
        if self.cfg.weight_norms:
            layout["per layer: weight norm"] = per_level(WEIGHT_NORM, levels)
        if self.cfg.update_ratios:
            layout["per layer: update ratio"] = per_level(UPDATE_RATIO, levels)
        if self.cfg.activations and self.blocks:
            blocks: dict[str, list[str]] = {}
            for name, _ in self.blocks:
                level, _, layer = name.partition("/")
                blocks.setdefault(level, []).append(layer)
            layout["per block: activation std"] = per_level(ACT_STD, blocks)
            layout["per block: activation mean"] = per_level(ACT_MEAN, blocks)
        return layout


DETAIL = ("per layer: ", "per block: ")  # custom-scalars categories of per-layer detail: they open collapsed


def detail_categories(layout: dict) -> list[str]:
    """The categories of ``layout`` that hold per-layer detail (collapsed in the landing view)."""
    return [title for title in layout if title.startswith(DETAIL)]
