"""``skipbench probe``: its own --help, a one-screen summary, a folder the report recognises (issue 26)."""

from __future__ import annotations

import json

import pytest

from conftest import TINY, run_main


def test_probe_help_is_its_own_and_hides_the_schema_groups(capsys):
    code, out, err = run_main(["probe", "--help"], capsys)
    assert code == 0 and out.startswith("usage: skipbench probe") and "probe.json" in out
    assert "schema/" not in out and "shattering" in out


@pytest.mark.long
def test_a_probe_prints_what_it_measured_and_the_report_leaves_it_out(tmp_path, capsys):
    run_dir = tmp_path / "probe"
    code, out, err = run_main(["probe", *TINY, "model.depth=1", f"hydra.run.dir={run_dir}"], capsys)
    assert code == 0, err
    result = json.loads((run_dir / "probe.json").read_text())
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"probe of model {result['model']} at initialisation")
    assert f"{result['params']:,} parameters" in lines[0]
    assert f"{result['grad']['spread_decades']:.2f} decades" in out
    assert f"{result['shattered']['neighbour_corr']:.3f}" in out and "wrote" in lines[-1]
    from skipbench.report.runs import load_runs

    trained = tmp_path / "trained"
    code, _, err = run_main(["train", *TINY, "model.depth=1", "trainer.max_steps=2", "trainer.eval_every=2",
                             f"hydra.run.dir={trained}"], capsys)
    assert code == 0, err
    notes = []
    assert [r.name for r in load_runs(tmp_path, on_skip=notes.append)] == ["trained"] and "probe" in notes[0]
    # a claim measured at initialisation reads the probes, and only them (reproduce: claims 3 and 6)
    assert [r.name for r in load_runs(tmp_path, probes_only=True)] == ["probe"]
