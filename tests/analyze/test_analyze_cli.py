"""``skipbench analyze`` through the CLI in subprocesses, on one tiny real run: bad input gets one line
(no traceback), and an analysis reads the checkpoint without changing it.

The subprocess cases (a training run and eight analyses, ~50 s on a busy 2-core machine) are ``slow``;
the two cheapest bad inputs also run in-process in the default run."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import TINY, describe, finish, run_cli, run_main, start_cli
from skipbench.run_folder import CHECKPOINT, CONFIG, LANDSCAPE, LESION

FAST = ["progress=false", "num_threads=1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """``skipbench train model=resnet`` for 2 steps at width 4: a finished run folder with a checkpoint."""
    cwd = tmp_path_factory.mktemp("analyze_cli")
    run = cwd / "run"
    res = run_cli(["train", "model=resnet", *TINY, "trainer.max_steps=2", "trainer.num_threads=1",
                   f"hydra.run.dir={run}"], cwd=cwd)
    assert res.returncode == 0 and (run / CHECKPOINT).is_file(), describe(res)
    return run


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def results(tiny_run) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every case below started side by side (each is a fresh interpreter), then collected."""
    root = tiny_run.parent
    no_ckpt = root / "no_checkpoint"
    shutil.copytree(tiny_run, no_ckpt)
    (no_ckpt / CHECKPOINT).unlink()
    other = root / "other_arch"
    shutil.copytree(tiny_run, other)
    cfg = yaml.safe_load((other / CONFIG).read_text())
    cfg["model"]["width"] = 8
    (other / CONFIG).write_text(yaml.safe_dump(cfg))
    cases = {
        "no_checkpoint": ["analyze", "lesion", str(no_ckpt), *FAST],
        "empty_folder": ["analyze", "landscape", str(root / "empty"), *FAST],
        "other_architecture": ["analyze", "lesion", str(other), *FAST],
        "grid_0": ["analyze", "landscape", str(tiny_run), "landscape.grid=0", *FAST],
        "no_such_block": ["analyze", "lesion", str(tiny_run), "lesion.blocks=enc9.0", *FAST],
        "no_such_block_in_list": ["analyze", "lesion", str(tiny_run), "lesion.blocks=[enc1.0,enc9.0]", *FAST],
        "lesion": ["analyze", "lesion", str(tiny_run), "lesion.draws=2", "lesion.k_max=2", *FAST],
        "landscape": ["analyze", "landscape", str(tiny_run), "landscape.grid=3", "landscape.batch=4",
                      "landscape.interp_points=3", "landscape.hessian_iters=2", "landscape.hessian_batch=2", *FAST],
    }
    chosen = root / "chosen"
    shutil.copytree(tiny_run, chosen)
    cases["chosen"] = ["analyze", "lesion", str(chosen), "lesion.blocks=enc1.0", *FAST]
    (root / "empty").mkdir()
    before = _sha(tiny_run / CHECKPOINT)
    procs = {k: start_cli(args, root) for k, args in cases.items() if k not in ("lesion", "landscape")}  # read-only
    out = {k: (finish(p), chosen if k == "chosen" else None) for k, p in procs.items()}
    for k in ("lesion", "landscape"):  # these two write into the run folder: one after the other
        out[k] = (finish(start_cli(cases[k], root)), tiny_run)
    out["sha"] = (before, _sha(tiny_run / CHECKPOINT))
    return out


@pytest.mark.parametrize("case,names", [
    ("no_checkpoint", [CHECKPOINT, "train it first"]),
    ("empty_folder", [CHECKPOINT, "empty"]),
    ("other_architecture", [CHECKPOINT, "does not fit", "resnet"]),
    ("grid_0", ["landscape.grid=0", ">= 3"]),
    ("no_such_block", ["lesion.blocks=enc9.0", "no such block", "deletable: enc0.0"]),
    ("no_such_block_in_list", ["lesion.blocks=enc9.0", "no such block"]),
])
@pytest.mark.slow
def test_bad_input_is_one_line_without_traceback(results, case, names):
    res, _ = results[case]
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode not in (0, None) and len(lines) == 1, describe(res)
    assert "Traceback" not in res.stderr and lines[0].startswith("skipbench analyze: error: "), describe(res)
    assert all(n in lines[0] for n in names), lines[0]


@pytest.mark.slow
def test_analyses_write_their_json_and_leave_the_checkpoint_as_it_was(results):
    before, after = results["sha"]
    assert before == after
    for kind, name in (("lesion", LESION), ("landscape", LANDSCAPE)):
        res, run = results[kind]
        assert res.returncode == 0, describe(res)
        assert f"-> {name}" in res.stdout and "Traceback" not in res.stderr
        data = json.loads((run / name).read_text())
        assert data["status"] == "completed" and data["model"] == "resnet"
    lesion = json.loads((run / LESION).read_text())
    assert len(lesion["single"]) == 7 and [c["k"] for c in lesion["k"]] == [1, 2]
    landscape = json.loads((run / LANDSCAPE).read_text())
    assert len(landscape["grid"]) == 3 and landscape["grid"][1][1] == pytest.approx(landscape["centre_loss"], rel=1e-5)


@pytest.mark.parametrize("args,names", [
    (["landscape", "{run}", "landscape.grid=0"], ["landscape.grid=0", ">= 3"]),
    (["lesion", "{run}"], [CHECKPOINT, "train it first"]),
    (["lesion", "{run}", "lesion.blocks=[enc9.0"], ["lesion.blocks"]),
])
def test_bad_input_in_process_is_one_line(tmp_path, capsys, args, names):
    run = tmp_path / "run"  # a run folder whose training stopped before its first checkpoint
    (run / CONFIG).parent.mkdir(parents=True)
    (run / CONFIG).write_text("model:\n  name: resnet\n")
    code, out, err = run_main(["analyze", *[a.format(run=run) for a in args], *FAST], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code not in (0, None) and len(lines) == 1 and "Traceback" not in err, err
    assert all(n in lines[0] for n in names), lines[0]


@pytest.mark.slow
def test_lesion_of_named_blocks_deletes_just_them(results):
    res, run = results["chosen"]
    assert res.returncode == 0 and "with enc1.0 deleted" in res.stdout, describe(res)
    data = json.loads((run / LESION).read_text())
    assert data["chosen"]["blocks"] == ["enc1.0"] and data["single"] == [] and data["k"] == []
    assert data["chosen"]["psnr"] != data["baseline"]["psnr"]  # the branch did something
