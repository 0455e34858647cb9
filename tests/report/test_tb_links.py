"""``skipbench tb``: run names that lead with what differs, and links to the story's views (issue 26)."""

from __future__ import annotations

import shlex

from conftest import run_main

from test_report import make_run


def test_names_lead_with_task_variant_and_what_differs(tmp_path, capsys):
    sweep = tmp_path / "multirun" / "2026-12-03_06-10-00"
    for model in ("autoencoder", "unet_concat"):
        for seed in (0, 1):
            run = make_run(sweep, f"{seed}_denoise_{model}_seed={seed}", model, seed, [10.0, 12.0])
            (run / ".hydra" / "overrides.yaml").write_text(
                f"- model={model}\n- seed={seed}\n- trainer.max_steps=30\n- hydra.sweep.dir=x\n")
    code, out, err = run_main(["tb", str(tmp_path), "--port", "6011"], capsys)
    assert code == 0, err
    command = next(line for line in out.splitlines() if line.startswith("tensorboard"))
    words = shlex.split(command)
    spec = words[words.index("--logdir_spec") + 1]
    names = sorted(item.split(":", 1)[0] for item in spec.split(","))
    # the same max_steps everywhere: not shown; model and seed differ: shown, model first
    assert names == ["denoise autoencoder seed=0", "denoise autoencoder seed=1",
                     "denoise unet_concat seed=0", "denoise unet_concat seed=1"]
    assert all(p.split(":", 1)[1].startswith(str(sweep)) for p in spec.split(","))
    assert "http://localhost:6011/?tagFilter=%5Eloss/#timeseries" in out and "#hparams" in out


def test_a_missing_folder_is_one_line(tmp_path, capsys):
    code, out, err = run_main(["tb", str(tmp_path / "nope")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no such directory" in err
