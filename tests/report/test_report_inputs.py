"""Run folders are data: `skipbench report` (and every reader) loads them without resolving a resolver
(`${oc.env:...}`), without custom tags, with a size/alias bound, never opening a special file, and takes
any value of the wrong type or range in `metrics.json` or a config without a traceback."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from skipbench import run_folder
from skipbench.report.cli import main as report_main
from skipbench.run_folder import UnreadableFile, read_json, read_yaml, resolve_nodes

from conftest import fails_if_blocked  # noqa: E402

SECRET = "s3cr3t-token-value"


@pytest.fixture(autouse=True)
def no_hang():
    with fails_if_blocked("reading a run folder"):
        yield


def make_run(root: Path, name: str, model: str = "unet_concat", seed: int = 0, psnr: float = 20.0,
             extra_config: str = "", **metrics) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    cfg = {"model": {"_target_": "skipbench.models.build_model", "name": model, "width": 8},
           "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.001}, "seed": seed}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False) + extra_config)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"seed={seed}"]))
    summary = {"status": "completed", "steps": 10, "max_steps": 10, "train_time_s": 1.0, "final_val_psnr": psnr,
               "best_val_psnr": psnr, **metrics}
    (run / "metrics.json").write_text(json.dumps(summary))
    return run


def report(root: Path, capsys, *args: str) -> tuple[int, str, str, str]:
    """rc, stdout, stderr and every report file's text together."""
    rc = report_main([str(root), "--no-plots", *args])
    out, err = capsys.readouterr()
    files = "".join(p.read_text() for p in root.glob("report.*"))
    return rc, out, err, files


# ------------------------------------------------------------------ interpolations and tags
def test_a_resolver_in_a_foreign_config_is_never_called(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SKIPBENCH_TEST_SECRET", SECRET)
    make_run(tmp_path, "a", model="${oc.env:SKIPBENCH_TEST_SECRET}")
    make_run(tmp_path, "b", model="unet_add")
    rc, out, err, files = report(tmp_path, capsys)
    assert rc == 0, err
    assert SECRET not in out + err + files
    assert "${oc.env:SKIPBENCH_TEST_SECRET}" in files, "kept as written"


def test_node_interpolations_of_the_config_itself_are_filled_in(tmp_path, capsys):
    """What Hydra saves unresolved (configs/tuned/*.yaml: ``lr: ${tuned_lr.${model.name}}``) still groups
    by its value."""
    tuned = "tuned_lr:\n  unet_concat: 0.0079\n  unet_add: 0.0094\n"
    for name, model in (("a", "unet_concat"), ("b", "unet_add")):
        run = make_run(tmp_path, name, model=model, extra_config=tuned)
        cfg = run / ".hydra" / "config.yaml"
        cfg.write_text(cfg.read_text().replace("lr: 0.001", "lr: ${tuned_lr.${model.name}}"))
    rc, out, err, files = report(tmp_path, capsys, "--group-by", "optimizer.lr")
    assert rc == 0, err
    assert "0.0079" in out and "0.0094" in out
    assert "${" not in json.dumps(json.loads((tmp_path / "report.json").read_text())["groups"])


def test_resolve_nodes_keeps_resolvers_cycles_and_missing_keys():
    cfg = {"a": "${oc.env:HOME}", "b": "${a}", "c": "${c}", "d": "${nope.x}", "e": "x_${f}", "f": 3,
           "g": "${now:%Y}_${f}"}
    assert resolve_nodes(cfg) == {"a": "${oc.env:HOME}", "b": "${oc.env:HOME}", "c": "${c}", "d": "${nope.x}",
                                  "e": "x_3", "f": 3, "g": "${now:%Y}_3"}


def _alias_bomb(levels: int = 9) -> str:
    text = 'l0: &a0 ["x","x","x","x","x","x","x","x","x","x"]\n'
    for i in range(1, levels):
        text += f"l{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]\n"
    return text


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    make_run(tmp_path, "bomb", extra_config=_alias_bomb())
    make_run(tmp_path, "ok")
    start = time.perf_counter()
    rc, out, err, _ = report(tmp_path, capsys)
    assert rc == 0 and time.perf_counter() - start < 10
    assert "skipped" in err and "alias" in err and "bomb" in err


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch {marker}']", "!custom {marker}",
                                 "!!python/name:os.system"])
def test_custom_tags_are_refused_not_constructed(tag, tmp_path, capsys):
    marker = tmp_path / "pwned"
    make_run(tmp_path, "evil", extra_config="evil: " + tag.format(marker=marker) + "\n")
    make_run(tmp_path, "ok")
    rc, out, err, _ = report(tmp_path, capsys)
    assert rc == 0 and "skipped" in err and "evil" in err and not marker.exists()


# ------------------------------------------------------------------ special files
@pytest.mark.parametrize("where", ["events.out.tfevents.1700000000.host.1.0", "metrics.json", ".hydra/overrides.yaml"])
def test_a_fifo_in_a_run_folder_never_blocks(where, tmp_path, capsys):
    make_run(tmp_path, "ok", psnr=21.0)
    run = make_run(tmp_path, "fifo")
    (run / where).unlink(missing_ok=True)
    os.mkfifo(run / where)
    rc, out, err, _ = report(tmp_path, capsys)
    assert rc == 0, err
    if where != ".hydra/overrides.yaml":
        assert "not a regular file (a FIFO)" in err


def test_readers_refuse_devices_directories_and_oversized_files(tmp_path):
    with pytest.raises(UnreadableFile, match="a character device"):
        read_json(Path("/dev/zero"))
    with pytest.raises(UnreadableFile, match="a directory"):
        read_yaml(tmp_path)
    big = tmp_path / "metrics.json"
    big.write_text(" " * (run_folder.MAX_FILE_BYTES + 1))
    with pytest.raises(UnreadableFile, match="over the"):
        read_json(big)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UnreadableFile, match="nested too deeply"):
        read_json(deep)


# ------------------------------------------------------------------ values of the wrong type or range
METRICS_CASES = {
    "int_past_float": {"final_val_psnr": 10**400, "steps": 10**400},
    "strings": {"final_val_psnr": "abc", "steps": "x", "train_time_s": [1], "error": {"a": 1}},
    "status_not_a_string": {"status": ["completed"]},
    "negative_and_huge": {"max_steps": -1, "train_time_s": 1e308, "peak_memory_mb": float("inf")},
}


@pytest.mark.parametrize("case", list(METRICS_CASES))
def test_metrics_of_the_wrong_type_or_range(case, tmp_path, capsys):
    make_run(tmp_path, "ok", psnr=21.0)
    make_run(tmp_path, "odd", seed=1, **METRICS_CASES[case])
    rc, out, err, files = report(tmp_path, capsys)
    assert rc == 0, err
    assert "Traceback" not in err
    json.loads((tmp_path / "report.json").read_text())  # still strict JSON


def test_nested_lists_and_mappings_in_a_config_group_runs(tmp_path, capsys):
    make_run(tmp_path, "a", extra_config="extra:\n  - [1, 2]\n  - {a: 3}\n")
    make_run(tmp_path, "b", seed=1, extra_config="extra:\n  - [1, 3]\n")
    rc, out, err, _ = report(tmp_path, capsys)
    assert rc == 0, err
    assert "extra" in out


def test_a_metrics_file_that_cannot_be_read_is_named(tmp_path, capsys):
    make_run(tmp_path, "ok")
    bad = make_run(tmp_path, "bad", seed=1)
    (bad / "metrics.json").write_text("[" * 100_000)
    rc, out, err, _ = report(tmp_path, capsys)
    assert rc == 0 and "bad: metrics.json unreadable" in err
