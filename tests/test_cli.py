"""The ``skipbench`` command line, each run in a subprocess started outside the checkout."""

from __future__ import annotations

import math
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import yaml
from hydra.utils import instantiate

from skipbench.models import list_models
from skipbench.train.checkpoint import CHECKPOINT, load_checkpoint
from skipbench.train.diagnostics import depth_ordered_layers, skeleton_layers

from conftest import (
    TINY, cli_env, compose, describe, event_files, finish, load_events, read_metrics, run_cli, start_cli,
)

# The run the brief describes, exactly.
RUN_ARGS = ["train", "trainer.max_steps=6", "trainer.eval_every=3", "trainer.log_every=2",
            "dataset.train_size=64", "dataset.val_size=16", "model.width=4", "trainer.progress=false"]


# ------------------------------------------------------------------ one real run
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cli_run")
    run_dir = cwd / "run"
    res = run_cli([*RUN_ARGS, f"hydra.run.dir={run_dir}"], cwd=cwd)
    return cwd, run_dir, res


def test_run_exits_zero_and_writes_metrics(cli_run):
    cwd, run_dir, res = cli_run
    assert res.returncode == 0, describe(res)
    assert "Traceback" not in res.stderr
    m = read_metrics(run_dir)
    assert m["status"] == "completed"
    assert m["steps"] == 6 and m["max_steps"] == 6
    assert m["model"] == "unet_concat"
    assert isinstance(m["final_val_psnr"], float) and math.isfinite(m["final_val_psnr"])
    assert math.isfinite(m["final_train_loss"])
    assert (run_dir / CHECKPOINT).is_file()
    assert load_checkpoint(run_dir / CHECKPOINT)["step"] == 6
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert not (cwd / "outputs").exists(), "hydra.run.dir was given: nothing else may be created"


def test_run_event_file_scalars(cli_run):
    _, run_dir, res = cli_run
    assert res.returncode == 0, describe(res)
    ea = load_events(run_dir)
    tags = ea.Tags()
    scalars = set(tags["scalars"])
    # the loss is named in its tags (denoise: MSE), so a CE run never shares its chart
    for tag in ("loss/mse/train", "loss/mse/val", "metric/val_psnr", "lr", "grad_norm/total", "hparams/score"):
        assert tag in scalars, tag
    assert not {"loss/train", "loss/val"} & scalars
    assert [e.step for e in ea.Scalars("loss/mse/train")] == [2, 4, 6]
    # a fresh run is evaluated at step 0, before training: every validation curve starts untrained
    assert [e.step for e in ea.Scalars("loss/mse/val")] == [0, 3, 6]
    assert [e.step for e in ea.Scalars("metric/val_psnr")] == [0, 3, 6]
    assert [e.value for e in ea.Scalars("hparams/score")] == [e.value for e in ea.Scalars("metric/val_psnr")]
    assert all(math.isfinite(e.value) for e in ea.Scalars("loss/mse/train"))
    # the logged train loss at the last step is the summary's final train loss
    assert ea.Scalars("loss/mse/train")[-1].value == pytest.approx(read_metrics(run_dir)["final_train_loss"], rel=1e-6)
    assert ea.Scalars("metric/val_psnr")[-1].value == pytest.approx(read_metrics(run_dir)["final_val_psnr"], rel=1e-6)
    cfg = compose(RUN_ARGS[1:])
    assert cfg.scheduler._target_.endswith(".constant")  # the default schedule: lr stays the optimizer's
    assert all(e.value == pytest.approx(cfg.optimizer.lr) for e in ea.Scalars("lr"))
    assert "samples/val" in tags["images"]
    assert [e.step for e in ea.Images("samples/val")] == [0, 3, 6]


def test_run_grad_norm_tags_one_per_layer_in_depth_order(cli_run):
    _, run_dir, res = cli_run
    assert res.returncode == 0, describe(res)
    # the same model the run built, from the same overrides
    cfg = compose(RUN_ARGS[1:])
    model = instantiate(cfg.model, in_channels=cfg.dataset.channels, out_channels=cfg.dataset.channels,
                        head="pixels")
    names = [n for n, _ in skeleton_layers(model)[0]]
    assert len(names) == len(depth_ordered_layers(model)) == sum(
        isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)) for m in model.modules())
    expected = [f"grad_norm/{n}" for n in names]
    scalars = load_events(run_dir).Tags()["scalars"]
    logged = sorted(t for t in scalars if t.startswith("grad_norm/") and t != "grad_norm/total")
    assert logged == expected  # one tag per layer, sorted by name = sorted by depth
    levels = sorted(t for t in scalars if t.startswith("grad_level/"))
    assert levels == [f"grad_level/{lvl}" for lvl in ("00_enc0", "01_enc1", "02_enc2", "03_bottleneck", "04_dec2",
                                                       "05_dec1", "06_dec0", "07_head")]
    ea = load_events(run_dir)
    for tag in [*expected, "grad_norm/total"]:
        events = ea.Scalars(tag)
        assert [e.step for e in events] == [2, 4, 6], tag
        assert all(math.isfinite(e.value) and e.value >= 0 for e in events), tag
    # the total bounds every layer's norm
    totals = [e.value for e in ea.Scalars("grad_norm/total")]
    for tag in expected:
        assert all(e.value <= t * (1 + 1e-5) for e, t in zip(ea.Scalars(tag), totals)), tag


def test_run_hparams_in_the_run_folder_itself(cli_run):
    _, run_dir, res = cli_run
    assert res.returncode == 0, describe(res)
    files = event_files(run_dir)
    assert files, "no event file"
    assert all(f.parent == run_dir for f in files), [str(f.relative_to(run_dir)) for f in files]
    assert len(files) == 1
    hparams = load_events(run_dir).PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(hparams)
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    from skipbench.train.tb import HPARAM_METRICS

    exp = HParamsPluginData.FromString(hparams["_hparams_/experiment"]).experiment
    # the same metric list in every run, whatever its task: task-independent score first
    assert [m.name.tag for m in exp.metric_infos] == [tag for tag, _, _ in HPARAM_METRICS]
    assert exp.metric_infos[0].name.tag == "hparams/score"


# ------------------------------------------------------------------ a sweep
def test_multirun_two_variants(tmp_path):
    sweep = tmp_path / "sweep"
    res = run_cli(["train", "-m", "model=autoencoder,unet_concat", "trainer.max_steps=2", "trainer.eval_every=2",
                   "trainer.log_every=1", *TINY, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    # <num>_<task>_<model>: the overrides every job shares (max_steps, TINY's) are not repeated
    assert [p.name for p in jobs] == ["0_denoise_autoencoder", "1_denoise_unet_concat"]
    for model in ("autoencoder", "unet_concat"):
        (job,) = [p for p in jobs if p.name.endswith(f"_{model}")]
        m = read_metrics(job)
        assert m["status"] == "completed" and m["model"] == model and m["steps"] == 2
        assert len(event_files(job)) == 1 and event_files(job)[0].parent == job
    assert not (tmp_path / "outputs").exists()


# ------------------------------------------------------------------ user errors and help, side by side
BAD_OVERRIDES = {
    # override: what the one-line message must contain -- the bad value (or key) first, then what is allowed
    "model=bogus": ["bogus", "unet_concat", "autoencoder"],
    "model.long_skip=bogus": ["bogus", "none", "concat", "add"],
    "trainer.max_steps=abc": ["abc", "max_steps"],
    "trainer.foo=1": ["foo", "max_steps", "batch_size"],
    "optimizer=rmsprop": ["rmsprop", "adam", "sgd"],
    "trainer.batch_size=0": ["batch_size=0"],
    "optimizer.lr=-1": ["lr=-1"],
    "trainer.device=tpu": ["tpu", "cpu"],
    "resume=/nonexistent": ["/nonexistent"],
}
OTHER_COMMANDS = {
    "nosuchcmd": ["nosuchcmd"],
    "help": ["--help"],
    "cfg_job": ["train", "--cfg", "job"],
    "train_help": ["train", "--help"],
}


@pytest.fixture(scope="module")
def quick_commands(tmp_path_factory):
    """Every quick command at once (a few side by side), each in its own empty folder."""
    jobs = {f"bad:{o}": ["train", o] for o in BAD_OVERRIDES} | {f"cmd:{k}": v for k, v in OTHER_COMMANDS.items()}

    def run(item):
        key, args = item
        cwd = tmp_path_factory.mktemp("quick")
        return key, cwd, finish(start_cli(args, cwd))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return {key: (cwd, res) for key, cwd, res in pool.map(run, jobs.items())}


@pytest.mark.parametrize("override", list(BAD_OVERRIDES))
def test_bad_override_one_line_error(quick_commands, override):
    cwd, res = quick_commands[f"bad:{override}"]
    assert res.returncode == 2, describe(res)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, describe(res)
    line = lines[0]
    assert line.startswith("skipbench train: error:"), line
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    for word in BAD_OVERRIDES[override]:
        assert word in line, (word, line)
    assert not (cwd / "outputs").exists(), "a run folder was created for a config that cannot run"
    assert list(cwd.iterdir()) == []


def test_unknown_command(quick_commands):
    cwd, res = quick_commands["cmd:nosuchcmd"]
    assert res.returncode == 2, describe(res)
    first = [line for line in res.stderr.splitlines() if line.strip()][0]
    assert first.startswith("skipbench: error:") and "nosuchcmd" in first
    assert "known: train" in first
    assert "Traceback" not in res.stderr


def test_top_level_help(quick_commands):
    _, res = quick_commands["cmd:help"]
    assert res.returncode == 0, describe(res)
    assert "train" in res.stdout and "usage:" in res.stdout


def test_cfg_job_prints_composed_yaml(quick_commands):
    cwd, res = quick_commands["cmd:cfg_job"]
    assert res.returncode == 0, describe(res)
    assert "long_skip: concat" in res.stdout
    cfg = yaml.safe_load(res.stdout)
    assert cfg["model"]["name"] == "unet_concat" and cfg["model"]["long_skip"] == "concat"
    assert set(cfg) >= {"model", "dataset", "task", "optimizer", "scheduler", "trainer"}
    assert not (cwd / "outputs").exists()


def test_train_help_lists_model_options(quick_commands):
    _, res = quick_commands["cmd:train_help"]
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Config groups"))
    groups = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        group, _, options = line.partition(":")
        groups[group.strip()] = sorted(o.strip() for o in options.split(","))
    assert groups["model"] == list_models()
    for group in ("dataset", "task", "optimizer", "scheduler"):
        assert groups.get(group), group
    assert "long_skip" in res.stdout  # the current config follows


def test_installed_console_script(tmp_path):
    exe = shutil.which("skipbench")
    assert exe, "the skipbench console script is not on PATH (pip install -e .)"
    res = subprocess.run([exe, "--help"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, describe(res)
    assert "train" in res.stdout
    res = subprocess.run([exe, "--version"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("skipbench ")


# ------------------------------------------------------------------ resume through the CLI
@pytest.mark.slow  # the Ctrl-C test below covers CLI resume exactness in the default run
def test_resume_matches_straight_run(tmp_path):
    common = ["trainer.eval_every=3", "trainer.log_every=2", *TINY]
    straight, split = tmp_path / "straight", tmp_path / "split"
    procs = [start_cli(["train", *common, "trainer.max_steps=8", f"hydra.run.dir={straight}"], tmp_path),
             start_cli(["train", *common, "trainer.max_steps=4", f"hydra.run.dir={split}"], tmp_path)]
    for res in [finish(p) for p in procs]:
        assert res.returncode == 0, describe(res)
    assert read_metrics(split)["steps"] == 4

    # only resume= and the new length: the rest comes back from the run's .hydra/overrides.yaml
    res = run_cli(["train", f"resume={split}", "trainer.max_steps=8"], cwd=tmp_path)
    assert res.returncode == 0, describe(res)
    assert not (tmp_path / "outputs").exists(), "resume must write into the run folder it continues"
    a, b = read_metrics(straight), read_metrics(split)
    assert b["status"] == "completed" and b["steps"] == 8
    assert abs(a["final_train_loss"] - b["final_train_loss"]) < 1e-6
    assert abs(a["final_val_psnr"] - b["final_val_psnr"]) < 1e-6
    sa, sb = load_checkpoint(straight / CHECKPOINT), load_checkpoint(split / CHECKPOINT)
    assert sa["step"] == sb["step"] == 8
    assert sa["model"].keys() == sb["model"].keys()
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    # the resumed curve continues the first part's without a doubled tail
    la, lb = load_events(straight).Scalars("loss/mse/train"), load_events(split).Scalars("loss/mse/train")
    assert [e.step for e in lb] == [e.step for e in la] == [2, 4, 6, 8]
    assert [e.value for e in lb] == pytest.approx([e.value for e in la], abs=1e-6)


def test_resume_of_non_run_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    res = run_cli(["train", f"resume={tmp_path / 'empty'}"], cwd=tmp_path)
    assert res.returncode == 2, describe(res)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("skipbench train: error:") and "empty" in lines[0]


# ------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_saves_a_checkpoint_and_resume_is_exact(tmp_path):
    import signal
    import time

    common = [*TINY, "trainer.max_steps=30", "trainer.eval_every=10", "trainer.log_every=2"]
    run_dir, straight = tmp_path / "run", tmp_path / "straight"
    proc = start_cli(["train", *common, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    straight_proc = start_cli(["train", *common, f"hydra.run.dir={straight}"], cwd=tmp_path)
    log = run_dir / "train.log"
    deadline = time.time() + 200
    while time.time() < deadline and not (log.exists() and "step 10/30" in log.read_text()):
        time.sleep(0.2)
    assert log.exists() and "step 10/30" in log.read_text(), "the run never reached its first eval"
    proc.send_signal(signal.SIGINT)
    res = finish(proc)
    assert res.returncode == 130, describe(res)
    assert "Traceback" not in res.stderr
    stopped = read_metrics(run_dir)
    assert stopped["status"] == "interrupted" and 10 <= stopped["steps"] < 30
    assert load_checkpoint(run_dir / CHECKPOINT)["step"] == stopped["steps"]
    assert "resume=" in res.stdout + res.stderr  # the message says how to go on

    resumed = run_cli(["train", f"resume={run_dir}"], cwd=tmp_path)
    assert resumed.returncode == 0, describe(resumed)
    assert finish(straight_proc).returncode == 0
    a, b = read_metrics(run_dir), read_metrics(straight)
    assert a["status"] == "completed" and a["steps"] == 30
    assert a["final_val_psnr"] == b["final_val_psnr"] and a["final_train_loss"] == b["final_train_loss"]
    assert torch.equal(load_checkpoint(run_dir / CHECKPOINT)["model"]["head.weight"],
                       load_checkpoint(straight / CHECKPOINT)["model"]["head.weight"])
    # step 0 is evaluated once, by the fresh run; the resumed session does not evaluate again first
    assert [e.step for e in load_events(run_dir).Scalars("loss/mse/val")] == [0, 10, 20, 30]


def test_resume_of_a_folder_without_checkpoint_is_one_line(tmp_path):
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("[]\n")
    res = run_cli(["train", f"resume={tmp_path / 'run'}"], cwd=tmp_path)
    assert res.returncode == 2, describe(res)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("skipbench train: error: resume=") and "checkpoint.pt" in lines[0]


def test_tilde_paths_are_expanded_like_a_shell_user_expects(tmp_path, monkeypatch):
    from skipbench.cli import expand_home

    monkeypatch.setenv("HOME", str(tmp_path))
    assert expand_home(["dataset.root=~/data/cifar10", "model=resnet", "-m"]) == [
        f"dataset.root='{tmp_path}/data/cifar10'", "model=resnet", "-m"]
    # and the real CLI accepts it: the error is about the missing files, not the '~'
    res = run_cli(["train", "dataset=cifar10", "dataset.root=~/nothing", "trainer.progress=false"], cwd=tmp_path)
    assert res.returncode == 2 and "cifar-10" in res.stderr and "Lexer" not in res.stderr, describe(res)
