"""The Python API: the CLI's runs, sweeps and reports as functions, with the CLI's errors."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

import skipbench
from conftest import TINY
from skipbench.errors import ConfigError

FAST = [*TINY, "trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    table = skipbench.compare(models=["autoencoder", "unet_concat"], seeds=[0, 1], overrides=[*FAST, "tags=[api]"],
                              sweep_dir=out / "sweep", as_frame=False)
    return out / "sweep", table


@pytest.mark.long
def test_train_returns_the_summary_and_a_run_folder_like_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = skipbench.train([*FAST, "model=resnet", "tags=[first,api]"])
    assert run.folder.parent == tmp_path / "outputs" / "runs" and run.folder.name.endswith("_denoise_resnet")
    assert run == json.loads((run.folder / "metrics.json").read_text())
    assert run["status"] == "completed" and run["model"] == "resnet" and run["steps"] == 4
    assert run["tags"] == ["first", "api"]
    saved = OmegaConf.load(run.folder / ".hydra" / "config.yaml")  # what the report reads
    assert saved.model.name == "resnet" and list(saved.tags) == ["first", "api"]
    assert "model=resnet" in OmegaConf.load(run.folder / ".hydra" / "overrides.yaml")
    assert any(p.name.startswith("events.out.tfevents") for p in run.folder.iterdir())


@pytest.mark.long
def test_train_takes_a_composed_config_and_a_folder(tmp_path):
    cfg = skipbench.compose([*FAST, "model=unet_add"])
    assert cfg.model.name == "unet_add" and "hydra" not in cfg
    cfg.trainer.max_steps = 2  # edited in Python
    run = skipbench.train(cfg, run_dir=tmp_path / "mine")
    assert run.folder == tmp_path / "mine" and run["steps"] == 2 and run["model"] == "unet_add"


def test_mistakes_raise_the_clis_one_line_before_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^model\.long_skip=bogus: unknown long skip 'bogus'; known: none, concat"):
        skipbench.train([*FAST, "model.long_skip=bogus"])
    with pytest.raises(ConfigError, match=r"^unknown model 'nope'; known: autoencoder"):
        skipbench.train([*FAST, "model=nope"])
    with pytest.raises(ConfigError, match=r"trainer\.max_steps=0: must be an integer >= 1"):
        skipbench.train([*FAST, "trainer.max_steps=0"])
    with pytest.raises(ConfigError, match=r"unknown key 'trainer.bogus'"):
        skipbench.compose(["trainer.bogus=1"])
    assert not (tmp_path / "outputs").exists()


def test_the_api_names_survive_importing_the_packages_behind_them():
    import skipbench.report.aggregate  # noqa: F401  (sets skipbench.report to the package)
    import skipbench.sweep  # noqa: F401
    import skipbench.train.loop  # noqa: F401

    assert callable(skipbench.train) and callable(skipbench.sweep) and callable(skipbench.report)
    assert skipbench.train.loop.fit is not None  # the package is still the package


@pytest.mark.long
def test_compare_trains_every_model_and_seed_and_returns_the_table(compared):
    sweep_dir, table = compared
    assert {row["model"] for row in table} == {"autoencoder", "unet_concat"}
    assert all(row["n"] == 2 and row["failed"] == 0 and len(row["run_names"]) == 2 for row in table)
    assert all(isinstance(row["final_val_psnr_mean"], float) for row in table)
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())[:4] == [
        "denoise_autoencoder_seed=0", "denoise_autoencoder_seed=1", "denoise_unet_concat_seed=0",
        "denoise_unet_concat_seed=1"]
    assert (sweep_dir / "report.md").is_file()


@pytest.mark.long
def test_report_filters_by_tags(compared, tmp_path, monkeypatch):
    sweep_dir, _ = compared
    assert len(skipbench.report(sweep_dir, tags=["api"], write=False, as_frame=False)) == 2
    with pytest.raises(skipbench.errors.ReportError, match=r"--tags other: no run below .* tags there: api"):
        skipbench.report(sweep_dir, tags=["other"], write=False)


@pytest.mark.long
def test_report_without_pandas_gives_records_and_refuses_a_frame(compared, monkeypatch):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "pandas"
                        else real_import(name, *a, **k))
    rows = skipbench.report(compared[0], write=False)
    assert isinstance(rows, list) and rows[0]["group"].startswith("model=")
    with pytest.raises(ConfigError, match="as_frame=True needs pandas"):
        skipbench.report(compared[0], write=False, as_frame=True)
