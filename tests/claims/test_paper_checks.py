"""The papers' tables as checks: the conformance table agrees with the papers' printed counts, and a sweep's
runs are read in the paper's direction (deeper plain net higher, deeper ResNet lower; RED-Net's skips)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skipbench.claims.papers import PAPER_CHECKS, check_for, conformance
from skipbench.errors import ReportError
from skipbench.report.runs import Run
from skipbench.run_folder import COMPLETED


def fake(config: dict, losses: list[float], seed: int) -> Run:
    curve = [(10 * (i + 1), v) for i, v in enumerate(losses)]
    return Run(Path("/nonexistent"), "x", {**config, "seed": seed}, [], {"status": COMPLETED}, _scalars={"loss/train": curve})


def he_runs(plain_deep: float, resnet_deep: float) -> list[Run]:
    runs = []
    for seed, jitter in ((0, 0.0), (1, 0.02), (2, -0.01)):
        for model, deep in (("cifar_plain", plain_deep), ("cifar_resnet", resnet_deep)):
            runs.append(fake({"model.name": model, "model.n": 3}, [1.0 + jitter] * 5, seed))
            runs.append(fake({"model.name": model, "model.n": 9}, [deep + jitter] * 5, seed))
    return runs


def test_he2016_holds_when_plain_degrades_and_resnet_gains():
    m = PAPER_CHECKS["he2016_cifar10"].measure(he_runs(plain_deep=1.4, resnet_deep=0.8))
    plain, resnet = m.effects[""]
    assert plain.mean == pytest.approx(0.4) and resnet.mean == pytest.approx(-0.2)
    assert m.verdict == "holds" and [r.label for r in m.rows] == ["plain-20", "plain-56", "ResNet-20", "ResNet-56"]


def test_he2016_does_not_hold_the_other_way_round():
    assert PAPER_CHECKS["he2016_cifar10"].measure(he_runs(plain_deep=0.8, resnet_deep=1.4)).verdict == "does not hold"


def test_rednet_reads_depth_and_skips():
    runs = []
    for seed, j in ((0, 0.0), (1, 0.001)):
        for skip, d, v in (("none", 20, 0.02), ("none", 30, 0.05), ("add", 20, 0.015), ("add", 30, 0.012)):
            runs.append(fake({"model.name": "rednet", "model.depth": d, "model.long_skip": skip}, [v + j] * 5, seed))
    assert check_for(runs).name == "rednet_depth"
    m = PAPER_CHECKS["rednet_depth"].measure(runs)
    deeper, skips = m.effects[""]
    assert deeper.mean == pytest.approx(0.03) and skips.mean == pytest.approx(-0.038) and m.verdict == "holds"


def test_unknown_models_have_no_paper_check():
    with pytest.raises(ReportError, match="no paper check for models resnet"):
        check_for([fake({"model.name": "resnet"}, [1.0], 0)])


def test_conformance_table_matches_the_papers_printed_counts():
    rows = {label: (paper, got) for label, paper, got, _ in conformance()}
    for label, (paper, got) in rows.items():
        if paper.endswith(" M") and paper[0].isdigit():
            digits = len(paper.split()[0].split(".")[1])
            assert round(got / 1e6, digits) == float(paper.split()[0]), label
    assert round(rows["U-Net (1 -> 2 channels)"][1] / 1e6, 1) == 31.0
