"""The claims: what each states, where it comes from, its preset, and how it is measured and decided.

Every ``measure_*`` takes the runs of the claim's sweep (:class:`skipbench.report.runs.Run`) and returns
a :class:`Measured`: a table of per-seed values per group and the effects the verdict is computed from,
per setting (a learning rate of the grid). A claim's verdict is decided by the sequential rule of
:mod:`.sequential` over every effect of every setting (one Holm family).
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..report.runs import Run
from ..run_folder import (CHECKPOINT, COMPLETED, CROP_PSNR, DIVERGED, LANDSCAPE, LESION, PROBE, RESPONSE_STD,
                          UPDATE_RATIO, UnreadableFile, layer_of, read_json, write_json)
from .sequential import Schedule, Verdict, claim_verdict, sequential_verdict
from .verdict import Effect, effect

MARGIN_DB = 0.5  # "similar quality": the PSNR difference's 95 % CI must lie within +-0.5 dB


@dataclass
class Row:
    """One group of the claim's table: per-seed values of the measured quantity."""

    label: str
    values: dict[int, float]


@dataclass
class Measured:
    quantity: str  # what the table holds, with its unit
    rows: list[Row]
    effects: dict[str, list[Effect]]  # setting ("lr 0.001", "" for one setting) -> the effects it names
    rule: str  # the verdict rule in words, for docs/results.md
    note: str = ""  # why it may not hold at this scale, caveats
    extra: dict[str, Any] = field(default_factory=dict)
    axis: str = ""  # short y-axis label for the plot (default: quantity)
    profiles: dict[str, list[float]] = field(default_factory=dict)  # group -> a value per layer, by depth (plotted)
    profile_axis: str = ""

    schedule: Schedule = field(default_factory=Schedule)  # the looks the verdict is decided over

    @property
    def decision(self) -> Verdict:
        """The sequential verdict (:mod:`.sequential`): every effect of every setting in one Holm family,
        so "holds" needs each effect at each learning rate decided for."""
        every = [e for effects in self.effects.values() for e in effects]
        return sequential_verdict(every, self.schedule)

    @property
    def verdicts(self) -> dict[str, str]:
        """The verdict word per setting, from the claim-wide decision (the Holm family stays the claim)."""
        decided, n = self.decision.decided, self.decision.n
        out, i = {}, 0
        for setting, effects in self.effects.items():
            out[setting] = claim_verdict(decided[i:i + len(effects)], n).word
            i += len(effects)
        return out

    @property
    def verdict(self) -> str:
        return self.decision.word


@dataclass(frozen=True)
class Claim:
    name: str
    number: int
    statement: str
    source: str
    preset: str  # configs/experiment/<preset>.yaml
    command: str  # "train" or "probe"
    measure: Callable[[Sequence[Run]], Measured]
    # `skipbench analyze <analyze>` on each trained run before measuring (lesion.json / landscape.json), with these
    # knobs; None: the sweep's own files suffice
    analyze: str | None = None
    analyze_args: tuple[str, ...] = ()

    @property
    def shell(self) -> str:
        return f"skipbench {self.command} -m experiment={self.preset}"  # the preset picks its launcher


# ---------------------------------------------------------------- reading runs
def _cfg(run: Run, key: str, default: Any = None) -> Any:
    return run.config.get(key, default)


def _seed(run: Run) -> int:
    return int(_cfg(run, "seed", 0))


def by(runs: Sequence[Run], value: Callable[[Run], float | None], statuses: tuple[str, ...] = (COMPLETED,),
       **where: Any) -> dict[int, float]:
    """``{seed: value}`` of the runs ended with one of ``statuses`` (default: completed) whose config matches
    ``where`` (``model="plain"`` means ``model.name``; ``blocks=6`` means ``model.blocks_per_level``;
    ``lr=0.001`` means ``optimizer.lr``; any other key is a flat config key, ``**{"model.shortcut": "gated"}``)."""
    keys = {"model": "model.name", "blocks": "model.blocks_per_level", "lr": "optimizer.lr"}
    out = {}
    for run in runs:
        if run.status not in statuses:
            continue
        if all(_cfg(run, keys.get(k, k)) == v for k, v in where.items()):
            v = value(run)
            if v is not None and math.isfinite(v):
                out[_seed(run)] = float(v)
    return out


def by_list(runs: Sequence[Run], value: Callable[[Run], Any], **where: Any) -> list[Any]:
    """Like :func:`by` for values that are not numbers (a per-layer list): the values, in seed order."""
    keys = {"model": "model.name", "blocks": "model.blocks_per_level", "lr": "optimizer.lr"}
    return [value(r) for r in sorted(runs, key=_seed) if r.status == COMPLETED
            and all(_cfg(r, keys.get(k, k)) == v for k, v in where.items()) and value(r) is not None]


def lrs(runs: Sequence[Run]) -> list[float]:
    return sorted({float(_cfg(r, "optimizer.lr")) for r in runs if _cfg(r, "optimizer.lr") is not None})


def final(metric: str) -> Callable[[Run], float | None]:
    return lambda run: (run.metrics or {}).get(f"final_{metric}")


def at_step(tag: str, step: int) -> Callable[[Run], float | None]:
    """The value logged at the first step >= ``step``."""
    def get(run: Run) -> float | None:
        return next((v for s, v in run.curve(tag) if s >= step), None)
    return get


def tail_mean(tag: str, points: int) -> Callable[[Run], float | None]:
    """Mean of the last ``points`` logged values (the end of training, less noisy than one window)."""
    def get(run: Run) -> float | None:
        curve = run.curve(tag)
        return statistics.mean(v for _, v in curve[-points:]) if curve else None
    return get


def probe_value(*path: str) -> Callable[[Run], float | None]:
    """The number at ``path`` in a run's ``probe.json``; None when it has none (or not a number there)."""
    return file_value(PROBE, *path)


def file_value(name: str, *path: str) -> Callable[[Run], float | None]:
    """The number at ``path`` in the run folder's JSON file ``name`` (``probe.json``, ``lesion.json``, ...);
    None when the file or the number is missing."""
    from ..report.values import finite_number

    def get(run: Run) -> float | None:
        f = run.path / name
        if not f.exists():
            return None
        try:
            d: Any = read_json(f)
        except UnreadableFile:
            return None
        for p in path:
            d = d.get(p) if isinstance(d, dict) else None
        return finite_number(d)
    return get


_TRAINED: dict[Path, Any] = {}


def trained(run: Run):
    """The run's model rebuilt from its checkpoint (cached: several measures may need it)."""
    from .probes import load_trained

    if run.path not in _TRAINED:
        _TRAINED[run.path] = load_trained(run.path)
    return _TRAINED[run.path]


def per_lr(measure: Callable[[Sequence[Run]], Measured]) -> Callable[[Sequence[Run]], Measured]:
    """Measure a one-setting claim at each learning rate of its sweep's grid and merge the results: rows and
    effects named by lr, one setting per lr (so "holds" needs every lr); each lr's note is kept,
    named by its lr. Costs and profiles are the first lr's."""
    @functools.wraps(measure)
    def at_each_lr(runs: Sequence[Run]) -> Measured:
        grid = lrs(runs)
        if len(grid) < 2:
            return measure(runs)
        parts = {lr: measure([r for r in runs if float(_cfg(r, "optimizer.lr", "nan")) == lr]) for lr in grid}
        first = parts[grid[0]]
        rows = [Row(f"{row.label}, lr {lr:g}", row.values) for lr, m in parts.items() for row in m.rows]
        effects = {f"lr {lr:g}": [replace(e, name=f"lr {lr:g}: {e.name}") for e in m.effects[""]]
                   for lr, m in parts.items()}
        notes = " ".join(f"At lr {lr:g}: {m.note}." for lr, m in parts.items() if m.note)
        return replace(first, rows=rows, effects=effects, rule=f"{first.rule}; at each learning rate", note=notes)
    return at_each_lr


# ---------------------------------------------------------------- the measures
EITHER = "each effect is decided by the sequential rule (its sequential interval clears 0 on one side); holds if every " \
         "effect is decided the claimed way, does not hold if some are decided against and none for, mixed if some each " \
         "way, undecided while any is open"


def measure_long_skips(runs: Sequence[Run]) -> Measured:
    rows, effects = [], {}
    early = 25
    for lr in lrs(runs):
        ae, un = (by(runs, final("val_psnr"), model=m, lr=lr) for m in ("autoencoder", "unet_concat"))
        ae_early, un_early = (by(runs, at_step("metric/val_psnr", early), model=m, lr=lr) for m in ("autoencoder", "unet_concat"))
        rows += [Row(f"autoencoder, lr {lr:g}", ae), Row(f"unet_concat, lr {lr:g}", un)]
        effects[f"lr {lr:g}"] = [
            effect(f"lr {lr:g}: unet_concat − autoencoder, final val PSNR (dB)", ae, un, ">0"),
            effect(f"lr {lr:g}: unet_concat − autoencoder, val PSNR at step {early} (dB)", ae_early, un_early, ">0")]
    return Measured("final validation PSNR (dB)", rows, effects,
                    f"{EITHER}; effects: final PSNR gap (\"better\") and PSNR gap at step {early} (\"sooner\"), at each learning rate")


@per_lr
def measure_degradation(runs: Sequence[Run]) -> Measured:
    loss = tail_mean("loss/train", 5)
    blocks = sorted({int(_cfg(r, "model.blocks_per_level")) for r in runs})
    shallow, deep = blocks[0], blocks[-1]
    rows = []
    delta: dict[str, dict[int, float]] = {}
    for m in ("plain", "resnet", "highway", "densenet"):
        s, d = by(runs, loss, model=m, blocks=shallow), by(runs, loss, model=m, blocks=deep)
        rows += [Row(f"{m}, {shallow} block/level", s), Row(f"{m}, {deep} blocks/level", d)]
        delta[m] = {k: d[k] - s[k] for k in s.keys() & d.keys()}
    zero = {k: 0.0 for k in delta["plain"]}
    effects = [effect(f"plain: deep − shallow training loss", zero, delta["plain"], ">0")]
    effects += [effect(f"{m} − plain: (deep − shallow) training loss", delta["plain"], delta[m], "<0")
                for m in ("resnet", "highway", "densenet")]
    return Measured("training loss (cross-entropy), mean of the last 50 steps", rows, {"": effects},
                    f"{EITHER}; effects: the plain net's increase with depth, and each skip variant's increase minus the plain one's",
                    axis="training loss (CE)")


def measure_grad_depth(runs: Sequence[Run]) -> Measured:
    spread = probe_value("grad", "spread_decades")
    rows = [Row(m, by(runs, spread, model=m)) for m in ("plain", "resnet", "highway", "densenet")]
    plain = rows[0].values
    one = {k: 1.0 for k in plain}
    effects = [effect("plain spread − 1 decade", one, plain, ">0")]
    effects += [effect(f"{r.label} − plain spread (decades)", plain, r.values, "<0") for r in rows[1:]]
    profile = probe_value("grad", "log10_rel_grad")
    profiles = {}
    for r in rows:  # mean over seeds of each layer's log10 relative gradient, input side first
        curves = [c for c in by_list(runs, profile, model=r.label)]
        if curves and all(len(c) == len(curves[0]) for c in curves):
            profiles[r.label] = [statistics.mean(v) for v in zip(*curves)]
    return Measured("spread of log10(‖∂L/∂W‖/‖W‖) over the main-path convs at initialisation (decades)", rows,
                    {"": effects}, f"{EITHER}; effects: the plain net spreads over more than one decade, each skip variant spreads less",
                    axis="spread (decades)", profiles=profiles, profile_axis="log10 ‖∂L/∂W‖/‖W‖ (mean over seeds)")


PROBE_IMAGES = 64  # claim 4: the first validation images, the probe batch of every response measure


@per_lr
def measure_branch_response(runs: Sequence[Run]) -> Measured:
    from .probes import response_std

    def measured(run: Run) -> float | None:
        t = trained(run)
        probe = t.task.make_batch(t.data.val.take(slice(0, PROBE_IMAGES)), None)[0]
        return response_std(t.model, probe)["mean_std"]

    def std(run: Run) -> float | None:
        return kept(run, RESPONSE_STD, {"probe_images": PROBE_IMAGES}, lambda: measured(run))

    blocks = sorted({int(_cfg(r, "model.blocks_per_level")) for r in runs})
    rows, v = [], {}
    for m in ("plain", "resnet"):
        for b in blocks:
            v[m, b] = by(runs, std, model=m, blocks=b)
            rows.append(Row(f"{m}, {b} block{'s' if b > 1 else ''}/level", v[m, b]))
    effects = [effect(f"resnet − plain response std, {b} blocks/level", v["plain", b], v["resnet", b], "<0") for b in blocks]
    effects.append(effect(f"resnet: {blocks[-1]} − {blocks[0]} blocks/level response std",
                          v["resnet", blocks[0]], v["resnet", blocks[-1]], "<0"))
    means = [statistics.mean(r.values.values()) for r in rows if r.values]
    far = max((abs(x - 1.0) for x in means), default=0.0)
    note = (f"every group's mean response std is within {far:.2g} of 1.0, where BatchNorm starts (weight 1): the "
            f"{int(_cfg(runs[0], 'trainer.max_steps', 0))} training steps here moved the responses little; He et al. "
            "measured after full CIFAR-10 training (64k iterations)") if far < 0.1 else ""
    return Measured("mean std of the 3×3 layers' responses (after BN, before ReLU/addition), trained", rows, {"": effects},
                    f"{EITHER}; effects: residual − plain at each depth, and the deeper residual net − the shallower",
                    axis="mean response std", note=note)


@per_lr
def measure_update_ratio(runs: Sequence[Run]) -> Measured:
    from .probes import main_path

    def spread(run: Run) -> float | None:
        tags = sorted(t for t in run.scalars() if layer_of(t, UPDATE_RATIO))
        names = [layer_of(t, UPDATE_RATIO) for t in tags]
        means = [statistics.mean(v for _, v in run.curve(tags[i])) for i in main_path(names)]
        logs = [math.log10(max(m, 1e-30)) for m in means]
        return max(logs) - min(logs) if logs else None

    rows = [Row(m, by(runs, spread, model=m)) for m in ("unet_concat", "resunet")]
    effects = [effect("unet_concat − resunet, update-ratio spread (decades)", rows[1].values, rows[0].values, ">0")]
    return Measured("spread of log10 mean update ratio ‖ΔW‖/‖W‖ over the main-path convs (decades)", rows, {"": effects},
                    f"{EITHER}; effect: long-only U-Net's spread minus long+short Res-U-Net's", axis="update-ratio spread (decades)")


def measure_shattered(runs: Sequence[Run]) -> Measured:
    corr = probe_value("shattered", "neighbour_corr")
    blocks = sorted({int(_cfg(r, "model.blocks_per_level")) for r in runs})
    v = {(m, b): by(runs, corr, model=m, blocks=b) for m in ("plain", "resnet") for b in blocks}
    rows = [Row(f"{m}, {b} block{'s' if b > 1 else ''}/level", v[m, b]) for m in ("plain", "resnet") for b in blocks]
    deep, shallow = blocks[-1], blocks[0]
    effects = [effect(f"resnet − plain, {deep} blocks/level", v["plain", deep], v["resnet", deep], ">0"),
               effect(f"plain: {deep} − {shallow} blocks/level", v["plain", shallow], v["plain", deep], "<0")]
    return Measured("correlation of input gradients of neighbouring inputs at initialisation (eval mode, BatchNorm "
                    "set to a training batch's statistics)", rows, {"": effects},
                    f"{EITHER}; effects: residual − plain when deep, and the plain net's drop with depth",
                    axis="neighbour gradient correlation")


def measure_add_concat(runs: Sequence[Run]) -> Measured:
    from .probes import training_memory

    def mem(run: Run) -> float | None:
        t = trained(run)
        inputs, target = t.task.make_batch(t.data.train.take(slice(0, t.cfg.trainer.batch_size)), None)
        return training_memory(t.model, t.task, inputs, target)["step_bytes"] / 2**20

    rows, effects = [], {}
    costs = {}
    for name, get in (("params", lambda r: (r.metrics or {}).get("params")),
                      ("GFLOPs/sample", lambda r: (r.metrics or {}).get("flops_per_sample", 0) / 1e9),
                      ("training-step memory (MiB)", mem)):
        lr0 = lrs(runs)[0]
        costs[name] = {m: by(runs, get, model=m, lr=lr0) for m in ("unet_add", "unet_concat")}
    for lr in lrs(runs):
        add, cat = (by(runs, final("val_psnr"), model=m, lr=lr) for m in ("unet_add", "unet_concat"))
        rows += [Row(f"unet_add, lr {lr:g}", add), Row(f"unet_concat, lr {lr:g}", cat)]
        effects[f"lr {lr:g}"] = [effect(f"lr {lr:g}: unet_concat − unet_add, final val PSNR (dB)", add, cat, "~0", MARGIN_DB)]
        effects[f"lr {lr:g}"] += [effect(f"unet_concat − unet_add, {name}", c["unet_add"], c["unet_concat"], ">0")
                                  for name, c in costs.items()]
    extra = {name: {m: statistics.mean(v.values()) for m, v in c.items() if v} for name, c in costs.items()}
    return Measured("final validation PSNR (dB)", rows, effects,
                    f"{EITHER}; \"similar\" = the PSNR difference's CI inside ±{MARGIN_DB} dB; costs: concat − add > 0 "
                    "(deterministic: the same for every seed)", extra=extra)


def kept(run: Run, file: str, params: dict[str, Any], compute: Callable[[], float | None]) -> float | None:
    """A measure of the run's trained checkpoint, kept in ``<run>/<file>`` with ``params`` and the
    checkpoint's size and mtime it was taken on: a re-run of ``reproduce`` with every sweep finished reads it
    instead of rebuilding the model. Taken again when the checkpoint (a run trained further) or a parameter
    changes, or the file is damaged; a read-only sweep is measured each time, nothing lost."""
    st = (run.path / CHECKPOINT).stat()
    key = {**params, "checkpoint_bytes": st.st_size, "checkpoint_mtime_ns": st.st_mtime_ns}
    try:
        found = read_json(run.path / file)
    except (OSError, UnreadableFile):
        found = None
    if (isinstance(found, dict) and all(found.get(k) == v for k, v in key.items())
            and "value" in found and (found["value"] is None or isinstance(found["value"], float))):
        return found["value"]
    value = compute()
    try:
        write_json(run.path / file, {**key, "value": value})
    except OSError:
        pass
    return value


def central_val_psnr(run: Run, size: int) -> float:
    """The trained run's validation PSNR on the central ``size`` px (claim 8), kept in ``crop_psnr.json``."""
    from .probes import val_psnr_on

    return kept(run, CROP_PSNR, {"size": size}, lambda: val_psnr_on(trained(run), size))


def measure_crop(runs: Sequence[Run]) -> Measured:
    from ..models.encdec import valid_output_size

    crop = [r for r in runs if _cfg(r, "model.name") == "unet_crop"]
    size = valid_output_size(int(_cfg(crop[0], "dataset.size")), int(_cfg(crop[0], "model.depth")),
                             int(_cfg(crop[0], "model.blocks_per_level"))) if crop else 0
    rows, effects = [], {}
    for lr in lrs(runs):
        pad, val = (by(runs, lambda r: central_val_psnr(r, size), model=m, lr=lr) for m in ("unet_concat", "unet_crop"))
        rows += [Row(f"unet_concat (padded), lr {lr:g}", pad), Row(f"unet_crop (valid), lr {lr:g}", val)]
        effects[f"lr {lr:g}"] = [effect(f"lr {lr:g}: unet_crop − unet_concat, val PSNR on the central {size} px (dB)",
                                        pad, val, "~0", MARGIN_DB)]
    return Measured(f"validation PSNR on the central {size}×{size} px (dB)", rows, effects,
                    f"holds if the PSNR difference's sequential interval lies inside ±{MARGIN_DB} dB at every learning rate; "
                    f"does not hold if it lies outside the margin (the similarity is excluded); undecided while it straddles it")


# ---------------------------------------------------------------- claims 9-13 (issues 21 and 22)
TARGET_LOSS = 0.5  # claims 11-12: the training cross-entropy "trains" means reaching (digits, 10 classes: chance 2.30)
ROUGH = 0.1  # claim 10: a surface is "rough" when over this fraction of its grid-line points are non-convex
SMOOTH = 0.5  # claim 9: "degrades smoothly" when no one further deletion costs over half the accuracy lost at K


def best_loss(tag: str = "loss/train", points: int = 5) -> Callable[[Run], float | None]:
    """The lowest mean of ``points`` consecutive logged values (the best training loss, less noisy than one window)."""
    def get(run: Run) -> float | None:
        values = [v for _, v in run.curve(tag)]
        means = [statistics.mean(values[i:i + points]) for i in range(len(values) - points + 1)]
        finite = [m for m in means if math.isfinite(m)]
        return min(finite) if finite else None
    return get


def steps_to(target: float, tag: str = "loss/train") -> Callable[[Run], float | None]:
    """The first logged step whose value is at most ``target``; a run that never gets there (diverged, stalled)
    counts as ``max_steps + log_every``: censored just past the budget, so it is slower than any run that did."""
    def get(run: Run) -> float | None:
        curve = run.curve(tag)
        hit = next((s for s, v in curve if math.isfinite(v) and v <= target), None)
        if hit is not None:
            return float(hit)
        return float(int(_cfg(run, "trainer.max_steps", 0)) + int(_cfg(run, "trainer.log_every", 1)))
    return get


def _means(runs: Sequence[Run], value: Callable[[Run], float | None], **where: Any) -> str:
    v = by(runs, value, **where)
    return f"{statistics.mean(v.values()):.3g}" if v else "–"


def measure_lesion(runs: Sequence[Run]) -> Measured:
    drop, smooth = file_value(LESION, "single_drop"), file_value(LESION, "smoothness")
    rows = [Row(f"{m}: single-block deletion drop", by(runs, drop, model=m)) for m in ("plain", "resnet")]
    resnet_smooth = by(runs, smooth, model="resnet")
    rows.append(Row("resnet: largest one-step share of the drop at K", resnet_smooth))
    effects = [effect("resnet − plain, val accuracy lost by deleting one block", rows[0].values, rows[1].values, "<0"),
               effect(f"resnet: largest share of the k = K drop taken by one deletion − {SMOOTH}",
                      {k: SMOOTH for k in resnet_smooth}, resnet_smooth, "<0")]
    refused = [len(r) for r in by_list(runs, _lesion_list("not_deletable"), model="plain")]
    note = (f"the plain net's blocks that change shape cannot be replaced by the identity ({refused[0]} of its blocks "
            "per run); its drop is the mean over the others") if refused and refused[0] else ""
    return Measured("val accuracy lost when one block is deleted at test time (lesion.json of `skipbench analyze "
                    "lesion`: baseline − mean over single deletions)", rows, {"": effects},
                    f"{EITHER}; effects: residual − plain single-block drop, and the residual net's largest one-step "
                    f"share of the accuracy lost with K blocks deleted below {SMOOTH} (a cliff is 1, a steady decline "
                    "1/K)", axis="val accuracy drop / share", note=note)


def _lesion_list(key: str) -> Callable[[Run], list | None]:
    def get(run: Run) -> list | None:
        try:
            d = read_json(run.path / LESION)
        except (UnreadableFile, OSError):
            return None
        return d.get(key) if isinstance(d, dict) and isinstance(d.get(key), list) else None
    return get


def measure_landscape(runs: Sequence[Run]) -> Measured:
    rough = file_value(LANDSCAPE, "nonconvex_fraction")
    names = {"plain": "plain (no skips)", "resnet": "resnet (short skips)", "unet_concat": "unet_concat (long skips)"}
    v = {m: by(runs, rough, model=m) for m in names}
    rows = [Row(label, v[m]) for m, label in names.items()]
    effects = [effect(f"plain nonconvex fraction − {ROUGH} (the plain surface is rough)", {k: ROUGH for k in v["plain"]},
                      v["plain"], ">0"),
               effect("resnet − plain, nonconvex fraction", v["plain"], v["resnet"], "<0"),
               effect("unet_concat − plain, nonconvex fraction", v["plain"], v["unet_concat"], "<0")]
    ratio = file_value(LANDSCAPE, "hessian", "ratio")
    note = "mean |λmin/λmax| of the Hessian at the minimum (not part of the verdict): " + ", ".join(
        f"{m} {_means(runs, ratio, model=m)}" for m in names)
    return Measured("fraction of the 2-d slice's interior grid points that violate convexity along a grid line "
                    "(landscape.json of `skipbench analyze landscape`: 21×21 filter-normalised slice on [−1, 1]², "
                    "BatchNorm in eval mode)", rows, {"": effects},
                    f"{EITHER}; roughness (fixed before any result was seen) = the fraction of interior points of the "
                    "slice where L[i−1] + L[i+1] − 2 L[i] < 0 along rows or columns; effects: the plain surface is rough "
                    f"(fraction > {ROUGH}), and short and long skips each lower the fraction", axis="nonconvex fraction",
                    note=note)


def measure_norm_free(runs: Sequence[Run]) -> Measured:
    steps = steps_to(TARGET_LOSS)
    models = ("resnet_nonorm", "rezero_resnet", "skipinit_resnet", "fixup_resnet", "resnet")
    v = {m: by(runs, steps, statuses=(COMPLETED, DIVERGED), model=m) for m in models}
    rows = [Row(m if m != "resnet" else "resnet (BatchNorm)", v[m]) for m in models]
    effects = [effect(f"{m} − resnet_nonorm, steps to training loss {TARGET_LOSS}", v["resnet_nonorm"], v[m], "<0")
               for m in models[1:4]]
    effects.append(effect(f"rezero_resnet − resnet (BatchNorm), steps to training loss {TARGET_LOSS}",
                          v["resnet"], v["rezero_resnet"], "<0"))
    unscaled = [r for r in runs if _cfg(r, "model.name") == "resnet_nonorm"]
    budget = int(_cfg(runs[0], "trainer.max_steps", 0)) if runs else 0
    never = sum(1 for r in unscaled if r.status in (COMPLETED, DIVERGED) and steps(r) > budget)
    diverged = sum(1 for r in unscaled if r.status == DIVERGED)
    note = (f"resnet_nonorm: {never} of {len(unscaled)} runs never reached the target ({diverged} diverged); "
            f"final training loss by model: " + ", ".join(f"{m} {_means(runs, final('train_loss'), model=m)}" for m in models))
    return Measured(f"training steps until the logged training loss is ≤ {TARGET_LOSS} (a run that never gets there, "
                    f"or diverges, counts as max_steps + log_every)", rows, {"": effects},
                    f"{EITHER}; effects: each zero-initialised scale (ReZero, SkipInit, Fixup) − the unscaled net without "
                    "normalisation, and ReZero − the BatchNorm ResNet, in steps to the target", axis="steps to target",
                    note=note)


def measure_shortcuts(runs: Sequence[Run]) -> Measured:
    loss = tail_mean("loss/train", 5)
    kinds = ("identity", "scaled", "gated", "shortcut_gated", "conv1x1", "dropout")
    v = {s: by(runs, loss, **{"model.shortcut": s}) for s in kinds}
    rows = [Row(s, v[s]) for s in kinds]
    ident = v["identity"]
    effects = [effect(f"identity: training loss − {TARGET_LOSS} (the identity net trains)",
                      {k: TARGET_LOSS for k in ident}, ident, "<0")]
    effects += [effect(f"{s} − identity, training loss", ident, v[s], ">0") for s in kinds[1:]]
    return Measured("training loss (cross-entropy), mean of the last 5 logged windows", rows, {"": effects},
                    f"{EITHER}; effects: the identity-shortcut net reaches training loss {TARGET_LOSS}, and each other "
                    "shortcut's final training loss − the identity's", axis="training loss (CE)")


def measure_deep_mlp(runs: Sequence[Run]) -> Measured:
    loss = best_loss()
    layers = sorted({int(_cfg(r, "model.num_layers")) for r in runs if _cfg(r, "model.num_layers") is not None})
    biases = sorted({float(_cfg(r, "model.highway_gate_bias")) for r in runs if _cfg(r, "model.highway_gate_bias") is not None})
    shallow, deep = (layers[0], layers[-1]) if layers else (0, 0)
    decided = min(biases) if biases else -2.0  # the most negative: Srivastava's setting for deep nets
    groups = [("mlp_plain", None), ("mlp_residual", None)] + [("mlp_highway", b) for b in biases]
    rows, delta = [], {}
    for m, b in groups:
        where = {"model": m} | ({"model.highway_gate_bias": b} if b is not None else {})
        label = m if b is None else f"{m}, gate bias {b:g}"
        s, d = (by(runs, loss, **where, **{"model.num_layers": n}) for n in (shallow, deep))
        rows += [Row(f"{label}, {shallow} layers", s), Row(f"{label}, {deep} layers", d)]
        delta[m, b] = {k: d[k] - s[k] for k in s.keys() & d.keys()}
    plain = delta.get(("mlp_plain", None), {})
    effects = [effect("mlp_plain: deep − shallow best training loss", {k: 0.0 for k in plain}, plain, ">0"),
               effect("mlp_residual − mlp_plain: (deep − shallow) best training loss", plain,
                      delta.get(("mlp_residual", None), {}), "<0"),
               effect(f"mlp_highway (gate bias {decided:g}) − mlp_plain: (deep − shallow) best training loss", plain,
                      delta.get(("mlp_highway", decided), {}), "<0")]
    others = [b for b in biases if b != decided]
    note = ("gate-bias dependence (shown, not decided): mlp_highway's deep − shallow best training loss " + ", ".join(
        f"at bias {b:g}: {statistics.mean(delta['mlp_highway', b].values()):.3g}" for b in biases
        if delta.get(("mlp_highway", b)))) if others else ""
    return Measured("best training loss (cross-entropy): lowest mean of 5 consecutive logged windows", rows, {"": effects},
                    f"{EITHER}; effects: the plain MLP's increase from {shallow} to {deep} layers, and the residual and "
                    f"highway (gate bias {decided:g}, the most negative swept) increases minus the plain one's",
                    axis="best training loss (CE)", note=note)

CLAIMS: dict[str, Claim] = {c.name: c for c in [
    Claim("long_skips", 1, "Long skips let an encoder–decoder denoise far better and sooner than a plain autoencoder.",
          "Mao et al. 2016 (RED-Net); Ronneberger et al. 2015 (U-Net)", "claim_long_skips", "train", measure_long_skips),
    Claim("degradation", 2, "Degradation: deeper plain networks reach a higher training loss; residual, highway and dense "
          "skips keep training as depth grows.", "He et al. 2016, Fig. 6; Srivastava et al. 2015; Huang et al. 2017",
          "claim_degradation", "train", measure_degradation),
    Claim("grad_depth", 3, "Without skips, gradient norms by depth spread over orders of magnitude; identity paths keep "
          "the profile flat.", "Glorot & Bengio 2010; He et al. 2016; Ioffe & Szegedy 2015",
          "claim_grad_depth", "probe", measure_grad_depth),
    Claim("branch_response", 4, "Residual branches respond less than plain layers, more so with depth.",
          "He et al. 2016, Fig. 7", "claim_branch_response", "train", measure_branch_response),
    Claim("update_ratio", 5, "A deep encoder–decoder without short skips updates some layers far less.",
          "Drozdzal et al. 2016 (weight-update heat maps)", "claim_update_ratio", "train", measure_update_ratio),
    Claim("shattered", 6, "Gradients of deep plain nets are shattered — nearly uncorrelated between neighbouring "
          "inputs — residual ones are not.", "Balduzzi et al. 2017", "claim_shattered", "probe", measure_shattered),
    Claim("add_concat", 7, "Add vs concat long skips: similar quality; concat costs more parameters, FLOPs and memory.",
          "Long et al. 2015 (FCN, add); Ronneberger et al. 2015 (concat); Chaurasia & Culurciello 2017 (LinkNet)",
          "claim_add_concat", "train", measure_add_concat),
    Claim("crop", 8, "Crop (valid convs) vs padding: the original crop-and-concat U-Net and the padded U-Net reach "
          "similar quality on the same output area.", "Ronneberger et al. 2015", "claim_crop", "train", measure_crop),
    Claim("lesion", 9, "Deleting one block of a trained residual net costs it far less than deleting one block of a "
          "plain net of the same depth, and the residual net degrades smoothly as more blocks are deleted.",
          "Veit, Wilber & Belongie 2016", "claim_lesion", "train", measure_lesion,
          analyze="lesion", analyze_args=("lesion.draws=3", "progress=false")),
    Claim("landscape", 10, "Skips keep the loss surface smooth: where the plain net's surface is rough, short (residual) "
          "and long (U-Net) skips make it smoother.", "Li, Xu, Taylor, Studer & Goldstein 2018", "claim_landscape",
          "train", measure_landscape, analyze="landscape",
          analyze_args=("landscape.batch=16", "landscape.interpolate=false", "progress=false")),
    Claim("norm_free", 11, "Without normalisation a deep residual net trains only with a zero-initialised residual scale "
          "(ReZero, SkipInit, Fixup), and ReZero reaches a target loss in fewer steps than the BatchNorm ResNet.",
          "Bachlechner et al. 2020 (ReZero); De & Smith 2020 (SkipInit); Zhang, Dauphin & Ma 2019 (Fixup)",
          "claim_norm_free", "train", measure_norm_free),
    Claim("shortcuts", 12, "Scaled, gated, 1×1-conv and dropout shortcuts reach a worse training loss than the identity, "
          "at a depth where the identity net trains.", "He, Zhang, Ren & Sun 2016b (Identity mappings), Table 1",
          "claim_shortcuts", "train", measure_shortcuts),
    Claim("deep_mlp", 13, "Fully connected plain nets' best training loss worsens from 10 to 100 layers; highway and "
          "residual nets' does not (with the dependence on the highway gate bias shown).",
          "Srivastava, Greff & Schmidhuber 2015, Fig. 1; He et al. 2016", "claim_deep_mlp", "train", measure_deep_mlp),
]}


def known_claims() -> list[str]:
    return list(CLAIMS)


def select_claims(names: Sequence[str]) -> list[Claim]:
    """The named claims in the order named (all, by number, when none is); an unknown name is a one-line error.
    A claim may be named by its name, its number or its preset (``long_skips``, ``1``, ``claim_long_skips``)."""
    if not names:
        return list(CLAIMS.values())
    alias = {**{str(c.number): c for c in CLAIMS.values()}, **{c.preset: c for c in CLAIMS.values()}, **CLAIMS}
    chosen = []
    for n in names:
        if n not in alias:
            raise ConfigError(f"unknown claim '{n}'; known: {', '.join(known_claims())}")
        if alias[n] not in chosen:
            chosen.append(alias[n])
    return chosen
