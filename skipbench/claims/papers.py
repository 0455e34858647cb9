"""The papers' tables as checks, next to what a reduced-scale sweep measures.

Each :class:`PaperCheck` holds a paper's own figures (copied from its tables, with where they are) and a
``measure`` that turns the runs of its preset's sweep (the full one on a cluster, or the ``_small`` one on
a laptop) into a :class:`~skipbench.claims.claims.Measured`: the same effects and verdict rule as the
claims (:mod:`.verdict`), but what is compared is the *direction* the paper reports, which a 200-step
run can show, not its error rates, which it cannot::

    python scripts/paper_checks.py outputs/multirun/he2016_cifar10_small_<time>

The parameter counts are checked exactly, on CPU, by ``tests/models/test_paper_nets.py``
(:data:`PARAMETERS` is the table it and the README print).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..report.runs import Run
from .claims import Measured, Row, by, tail_mean
from .verdict import effect

# (network, variant, its kwargs, the paper's printed parameter count, where it is printed)
PARAMETERS: list[tuple[str, str, dict, str, str]] = [
    ("ResNet-20", "cifar_resnet", {"n": 3}, "0.27 M", "He et al. 2016a, Table 6"),
    ("ResNet-32", "cifar_resnet", {"n": 5}, "0.46 M", "He et al. 2016a, Table 6"),
    ("ResNet-44", "cifar_resnet", {"n": 7}, "0.66 M", "He et al. 2016a, Table 6"),
    ("ResNet-56", "cifar_resnet", {"n": 9}, "0.85 M", "He et al. 2016a, Table 6"),
    ("ResNet-110", "cifar_resnet", {"n": 18}, "1.7 M", "He et al. 2016a, Table 6"),
    ("U-Net (1 -> 2 channels)", "unet2015", {}, "about 31.0 M", "Ronneberger et al. 2015 (as commonly quoted)"),
    ("DenseNet-BC (L=100, k=12)", "densenet_bc", {}, "0.8 M", "Huang et al. 2017, Table 2"),
    ("RED30 (1 channel)", "rednet", {"depth": 30}, "not printed", "Mao et al. 2016"),
]


@dataclass(frozen=True)
class PaperCheck:
    name: str
    source: str
    paper: str  # the paper's own figures, as it prints them
    preset: str  # the full preset (configs/experiment/); its reduced twin is <preset>_small
    measure: Callable[[Sequence[Run]], Measured]


def _depth_pair(runs: Sequence[Run], model: str, key: str, values: tuple, value) -> tuple[dict, dict]:
    shallow, deep = values
    return by(runs, value, model=model, **{key: shallow}), by(runs, value, model=model, **{key: deep})


def measure_he2016(runs: Sequence[Run]) -> Measured:
    """Fig. 6 and Table 6 in direction: plain-(6m+2) trains to a higher loss than plain-(6n+2) for m > n; the
    ResNet of the same depths to a loss no higher (the deeper one lower)."""
    loss = tail_mean("loss/train", 5)
    ns = sorted({int(r.config.get("model.n")) for r in runs if r.config.get("model.n") is not None})
    if len(ns) < 2:
        return Measured("training loss (cross-entropy), mean of the last 5 logged points", [], {"": []},
                        "needs two depths (model.n) in the sweep")
    shallow, deep = ns[0], ns[-1]
    rows, deltas = [], {}
    for model, label in (("cifar_plain", "plain"), ("cifar_resnet", "ResNet")):
        s, d = _depth_pair(runs, model, "model.n", (shallow, deep), loss)
        rows += [Row(f"{label}-{6 * shallow + 2}", s), Row(f"{label}-{6 * deep + 2}", d)]
        deltas[label] = (s, d)
    effects = [effect(f"plain-{6 * deep + 2} − plain-{6 * shallow + 2} training loss", *deltas["plain"], ">0"),
               effect(f"ResNet-{6 * deep + 2} − ResNet-{6 * shallow + 2} training loss", *deltas["ResNet"], "<0")]
    return Measured("training loss (cross-entropy), mean of the last 5 logged points", rows, {"": effects},
                    "holds when the deeper plain net ends higher and the deeper ResNet lower (95 % CIs over seeds)",
                    note="one seed gives no interval: the verdict then says whether each effect leans the paper's way")


def measure_rednet(runs: Sequence[Run]) -> Measured:
    """Mao et al. in direction: without skips the deeper RED-Net ends at a higher loss; with them it does not,
    and at the larger depth the skips lower the loss."""
    loss = tail_mean("loss/train", 5)
    depths = sorted({int(r.config.get("model.depth")) for r in runs if r.config.get("model.depth") is not None})
    if len(depths) < 2:
        return Measured("training loss (MSE)", [], {"": []}, "needs two depths (model.depth) in the sweep")
    shallow, deep = depths[0], depths[-1]
    got = {(skip, d): by(runs, loss, model="rednet", **{"model.long_skip": skip, "model.depth": d})
           for skip in ("none", "add") for d in (shallow, deep)}
    rows = [Row(f"RED{d}, {'skips' if s == 'add' else 'no skips'}", got[s, d]) for s in ("none", "add") for d in (shallow, deep)]
    effects = [effect(f"no skips: RED{deep} − RED{shallow} training loss", got["none", shallow], got["none", deep], ">0"),
               effect(f"RED{deep}: skips − no skips training loss", got["none", deep], got["add", deep], "<0")]
    return Measured("training loss (MSE), mean of the last 5 logged points", rows, {"": effects},
                    "holds when the deeper net without skips ends higher and the skips lower the deeper net's loss")


PAPER_CHECKS: dict[str, PaperCheck] = {c.name: c for c in [
    PaperCheck("he2016_cifar10", "He et al. 2016a, Sec. 4.2, Table 6, Fig. 6",
               "test error ResNet-20/32/44/56/110: 8.75 / 7.51 / 7.17 / 6.97 / 6.43 %; plain nets: training "
               "error rises with depth (plain-56 above plain-20, Fig. 6 left)", "he2016_cifar10", measure_he2016),
    PaperCheck("rednet_depth", "Mao et al. 2016, Sec. 4",
               "without skips a deeper RED-Net restores worse; with symmetric skips depth helps (RED30 >= RED20)",
               "rednet_depth", measure_rednet),
]}


def conformance() -> list[tuple[str, str, int, str]]:
    """``(network, paper's count, measured count, source)`` for :data:`PARAMETERS`, built on the meta device
    (the 31 M-parameter U-Net costs no memory). CIFAR nets: 3 -> 10; U-Net 1 -> 2; RED30 1 -> 1."""
    import torch

    from ..models import build_model

    rows = []
    for label, name, kw, paper, source in PARAMETERS:
        io = {"unet2015": (1, 2, "pixels"), "rednet": (1, 1, "pixels")}.get(name, (3, 10, "classes"))
        with torch.device("meta"):
            model = build_model(name, in_channels=io[0], out_channels=io[1], head=io[2], **kw)
        rows.append((label, paper, sum(p.numel() for p in model.parameters()), source))
    return rows


def check_for(runs: Sequence[Run]) -> PaperCheck:
    """The check a sweep's runs belong to, by their model: CIFAR nets -> he2016, RED-Net -> rednet_depth."""
    models = {str(r.config.get("model.name")) for r in runs}
    if models & {"cifar_resnet", "cifar_plain"}:
        return PAPER_CHECKS["he2016_cifar10"]
    if "rednet" in models:
        return PAPER_CHECKS["rednet_depth"]
    from ..errors import ReportError

    raise ReportError(f"no paper check for models {', '.join(sorted(models))}; known: he2016_cifar10 (cifar_resnet, "
                      "cifar_plain), rednet_depth (rednet)")
