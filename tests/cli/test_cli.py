"""The ``skipbench`` command line, each run in a subprocess started outside the checkout."""

from __future__ import annotations

import math
import shutil
import subprocess

import pytest
import torch
import yaml
from hydra.utils import instantiate

from skipbench.train.checkpoint import CHECKPOINT, load_checkpoint
from skipbench.train.diagnostics import depth_ordered_layers, skeleton_layers

from conftest import (
    SWEEP_MODELS, SWEEP_TASKS, TINY, cli_env, compose, describe, event_files, finish, group_options, job_dir,
    load_events, read_metrics, run_cli, run_main, start_cli,
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
    expected = [f"z_layer/grad_norm/{n}" for n in names]
    scalars = load_events(run_dir).Tags()["scalars"]
    logged = sorted(t for t in scalars if t.startswith("z_layer/grad_norm/"))
    assert logged == expected  # one tag per layer, sorted by name = sorted by depth
    levels = sorted(t for t in scalars if t.startswith("grad_level/"))
    assert levels == [f"grad_level/{lvl}" for lvl in ("00_enc0", "01_enc1", "02_enc2", "03_bottleneck", "04_dec2",
                                                       "05_dec1", "06_dec0", "07_head")]
    ea = load_events(run_dir)
    for tag in [*expected, "grad_norm/total"]:
        events = ea.Scalars(tag)
        assert [e.step for e in events] == [2, 4, 6], tag
        # strictly positive: every layer gets a gradient (all zeros would be a broken hook)
        assert all(math.isfinite(e.value) and e.value > 0 for e in events), tag
    # the total is over all parameters, so it bounds the layers' weights together, not just one by one
    totals = [e.value for e in ea.Scalars("grad_norm/total")]
    layer_sq = [sum(ea.Scalars(tag)[i].value ** 2 for tag in expected) for i in range(len(totals))]
    assert all(sq <= t * t * (1 + 1e-4) for sq, t in zip(layer_sq, totals)), (layer_sq, totals)


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


# ------------------------------------------------------------------ a sweep (the session's shared one)
@pytest.mark.long
def test_multirun_of_models_and_tasks(tiny_sweep):
    sweep, res = tiny_sweep
    assert res.returncode == 0, describe(res)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == len(SWEEP_MODELS) * len(SWEEP_TASKS), [p.name for p in jobs]
    for model in SWEEP_MODELS:
        for task in SWEEP_TASKS:
            job = job_dir(sweep, f"model={model}", f"task={task}")
            m = read_metrics(job)
            assert m["status"] == "completed" and m["model"] == model and m["task"] == task and m["steps"] == 4
            assert len(event_files(job)) == 1 and event_files(job)[0].parent == job
            # <task>_<model>: the overrides every job shares (max_steps, TINY's) are not repeated, no job number
            assert job.name == f"{task}_{model}", job.name
    assert not (sweep.parent / "outputs").exists()


# ------------------------------------------------------------------ user errors and help, in-process
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


def _one_error_line(err: str, prefix: str = "skipbench train: error:") -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix), lines[0]
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("override", list(BAD_OVERRIDES))
def test_bad_override_one_line_error(tmp_path, monkeypatch, capsys, override):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["train", override], capsys)
    assert code == 2, (out, err)
    line = _one_error_line(err)
    assert "Traceback" not in out
    for word in BAD_OVERRIDES[override]:
        assert word in line, (word, line)
    assert list(tmp_path.iterdir()) == [], "a run folder was created for a config that cannot run"


def test_unknown_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["nosuchcmd"], capsys)
    assert code == 2, err
    first = [line for line in err.splitlines() if line.strip()][0]
    assert first.startswith("skipbench: error:") and "nosuchcmd" in first
    assert "known: train" in first
    assert "Traceback" not in err


def test_top_level_help(capsys):
    code, out, _ = run_main(["help"], capsys)
    assert code == 0
    assert "train" in out and "usage:" in out


def test_cfg_job_prints_composed_yaml(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["train", "--cfg", "job"], capsys)
    assert code == 0, err
    assert "long_skip: concat" in out
    cfg = yaml.safe_load(out)
    assert cfg["model"]["name"] == "unet_concat" and cfg["model"]["long_skip"] == "concat"
    assert set(cfg) >= {"model", "dataset", "task", "optimizer", "scheduler", "trainer"}
    assert not (tmp_path / "outputs").exists()


def test_train_help_lists_model_options(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["train", "--help"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Config groups"))
    groups = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        group, _, options = line.partition(":")
        groups[group.strip()] = sorted(o.strip() for o in options.split(","))
    assert groups["model"] == group_options("model")
    for group in ("dataset", "task", "optimizer", "scheduler"):
        assert groups.get(group) == group_options(group), group
    assert "long_skip" in out  # the current config follows


def test_installed_console_script(tmp_path):
    """The one subprocess of the error/help family: the installed entry point itself."""
    exe = shutil.which("skipbench")
    if exe is None:
        pytest.skip("the skipbench console script is not on PATH (activate the venv, or pip install -e .)")
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


def test_resume_of_non_run_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["train", f"resume={tmp_path / 'empty'}"], capsys)
    assert code == 2, err
    assert "empty" in _one_error_line(err)


# ------------------------------------------------------------------ Ctrl-C
@pytest.mark.long
def test_ctrl_c_saves_a_checkpoint_and_resume_is_exact(tmp_path):
    """SIGINT once the run has logged its first eval. The run is far longer than it will get to
    (400 steps), so the signal always lands mid-run however fast the machine; the resumed run and
    the uninterrupted one then both stop a few steps past the interruption."""
    import signal
    import time

    common = [*TINY, "trainer.eval_every=10", "trainer.log_every=2"]
    run_dir, straight = tmp_path / "run", tmp_path / "straight"
    proc = start_cli(["train", *common, "trainer.max_steps=400", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    log = run_dir / "train.log"
    deadline = time.time() + 200
    while time.time() < deadline and proc.poll() is None and not (log.exists() and "step 10/400" in log.read_text()):
        time.sleep(0.1)
    assert log.exists() and "step 10/400" in log.read_text(), "the run never reached its first eval"
    proc.send_signal(signal.SIGINT)
    res = finish(proc)
    assert res.returncode == 130, describe(res)
    assert "Traceback" not in res.stderr
    stopped = read_metrics(run_dir)
    assert stopped["status"] == "interrupted" and 10 <= stopped["steps"] < 400
    assert load_checkpoint(run_dir / CHECKPOINT)["step"] == stopped["steps"]
    assert "resume=" in res.stdout + res.stderr  # the message says how to go on

    end = f"trainer.max_steps={stopped['steps'] + 5}"  # the constant lr does not depend on max_steps
    straight_proc = start_cli(["train", *common, end, f"hydra.run.dir={straight}"], cwd=tmp_path)
    resumed = run_cli(["train", f"resume={run_dir}", end], cwd=tmp_path)
    assert resumed.returncode == 0, describe(resumed)
    assert finish(straight_proc).returncode == 0
    a, b = read_metrics(run_dir), read_metrics(straight)
    assert a["status"] == "completed" and a["steps"] == stopped["steps"] + 5
    assert a["final_val_psnr"] == b["final_val_psnr"] and a["final_train_loss"] == b["final_train_loss"]
    sa, sb = load_checkpoint(run_dir / CHECKPOINT)["model"], load_checkpoint(straight / CHECKPOINT)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # step 0 is evaluated once, by the fresh run; the resumed session does not evaluate again first
    last = stopped["steps"] + 5
    evals = [0, *range(10, last + 1, 10)] + ([last] if last % 10 else [])
    assert [e.step for e in load_events(run_dir).Scalars("loss/mse/val")] == evals


def test_resume_of_a_folder_without_checkpoint_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    (tmp_path / "run" / ".hydra" / "overrides.yaml").write_text("[]\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["train", f"resume={tmp_path / 'run'}"], capsys)
    assert code == 2, err
    assert "checkpoint.pt" in _one_error_line(err, "skipbench train: error: resume=")


def test_tilde_paths_are_expanded_like_a_shell_user_expects(tmp_path, monkeypatch, capsys):
    from skipbench.commands.overrides import expand_home

    monkeypatch.setenv("HOME", str(tmp_path))
    assert expand_home(["dataset.root=~/data/cifar10", "model=resnet", "-m"]) == [
        f"dataset.root='{tmp_path}/data/cifar10'", "model=resnet", "-m"]
    # and the real CLI accepts it: the error is about the missing files, not the '~'
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["train", "dataset=cifar10", "dataset.root=~/nothing", "trainer.progress=false"], capsys)
    assert code == 2 and "cifar-10" in err and "Lexer" not in err, (out, err)
