"""The registry and the shipped configs agree; every option composes, checks and builds."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import skipbench.config as sbconfig
from skipbench.data import ImageData
from skipbench.models import MODELS, EncoderDecoder
from skipbench.tasks import Task
from skipbench.train.loop import param_groups

from conftest import MODEL_NAMES, compose, group_options, tiny_model

GROUPS = ["model", "dataset", "task", "optimizer", "scheduler"]
OPTIMIZER_CLASSES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def test_schema_groups_are_the_config_groups():
    assert set(sbconfig.SCHEMAS) == set(GROUPS)
    for group in GROUPS:
        assert group_options(group), f"no options in configs/{group}/"


SMALL = ["dataset.train_size=32", "dataset.val_size=8", "trainer.batch_size=8", "model.width=4"]
# The papers' networks (skipbench/models/papers.py) at small sizes (DenseNet-BC's width is its growth rate k)
PAPER_SMALL = {"cifar_resnet": ["model.n=1"], "cifar_plain": ["model.n=1"], "densenet_bc": ["model.L=10", "model.k=4"],
               "rednet": ["model.depth=6"], "unet2015": ["model.depth=1"]}


def _small(group: str, option: str, data_sizes: bool = False) -> list[str]:
    small = [o for o in SMALL if data_sizes or not (group == "dataset" and o.startswith("dataset."))]
    if group == "model" and option in PAPER_SMALL:
        small = [o for o in small if option != "densenet_bc" or o != "model.width=4"] + PAPER_SMALL[option]
    return small


def _fill_missing(cfg, tmp_path):
    """Mandatory values (``???``, e.g. dataset.root of dataset=folder) must be named by check_config."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    for key in missing:
        with pytest.raises(sbconfig.ConfigError, match=key.replace(".", r"\.")):
            sbconfig.check_config(cfg)
        OmegaConf.update(cfg, key, str(tmp_path))
    return missing


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in group_options(g) if (g, o) != ("model", "custom")],  # tests/models/test_custom_model.py
    ids=lambda v: str(v)
)
def test_every_option_composes_and_checks(group, option, tmp_path):
    cfg = compose([f"{group}={option}", *_small(group, option)])
    assert cfg[group] is not None
    _fill_missing(cfg, tmp_path)
    sbconfig.check_config(cfg)
    if group == "model":
        assert cfg.model.name == option
    # the composed optimizer builds the right torch optimizer over the loop's parameter groups
    model = tiny_model("autoencoder", depth=1)
    optimizer = instantiate(cfg.optimizer)(param_groups(model, cfg.optimizer.weight_decay))
    expected = OPTIMIZER_CLASSES[cfg.optimizer._target_.rsplit(".", 1)[1].lower()]
    assert type(optimizer) is expected
    if group == "optimizer":
        assert type(optimizer) is OPTIMIZER_CLASSES[option]
    assert optimizer.param_groups[0]["lr"] == cfg.optimizer.lr
    assert optimizer.param_groups[0]["weight_decay"] == cfg.optimizer.weight_decay
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    # a checkpoint must hold no omegaconf objects (weights_only loading)
    for value in optimizer.defaults.values():
        assert type(value).__module__ in ("builtins", "torch"), (type(value), value)
    scheduler = instantiate(cfg.scheduler)(optimizer, total_steps=10)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)


@pytest.mark.parametrize(
    "group,option",
    [(g, o) for g in GROUPS if g != "dataset" for o in group_options(g) if (g, o) != ("model", "custom")]
    + [("dataset", "shapes")],
    ids=lambda v: str(v),
)
def test_every_option_builds(group, option):
    """Data, task, model, optimizer and schedule as the loop builds them (offline data only)."""
    from skipbench.train.loop import build

    from skipbench.models.mlp import MLP
    from skipbench.models.papers import DenseNetBC, RedNet

    skeleton = MODELS[option].skeleton if group == "model" else "encdec"
    classify = skeleton in ("mlp", "cifar", "densenet_bc")  # these skeletons only classify
    cfg = compose([f"{group}={option}", *_small(group, option, data_sizes=True), *(["task=classify"] if classify else [])])
    sbconfig.check_config(cfg)
    run = build(cfg)
    assert isinstance(run.model, {"mlp": MLP, "densenet_bc": DenseNetBC, "rednet": RedNet}.get(skeleton, EncoderDecoder))
    assert isinstance(run.data, ImageData) and len(run.data.train) == 32 and len(run.data.val) == 8
    assert isinstance(run.task, Task)
    if group == "task":
        assert run.task.name == option
    if group == "dataset":
        assert run.data.name == option
    if group == "model":
        assert cfg.model.name == option
    if group == "optimizer":
        assert type(run.optimizer) is OPTIMIZER_CLASSES[option]
    # one forward pass gives what the task scores
    inputs, target = run.task.make_batch(run.data.val.take(slice(0, 2)), torch.Generator().manual_seed(0))
    output = run.model.eval()(inputs)
    assert torch.isfinite(run.task.loss(output, target))


def test_default_config():
    cfg = compose()
    assert cfg.model.name == "unet_concat"
    assert str(cfg.model.long_skip) == "concat"
    sbconfig.check_config(cfg)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CLASSES))
def test_optimizer_option_instantiates_right_class(name):
    cfg = compose([f"optimizer={name}"])
    opt = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2, 2))])
    assert type(opt) is OPTIMIZER_CLASSES[name]
    assert opt.defaults["lr"] == cfg.optimizer.lr


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_param_groups_no_decay_on_norms_and_biases(name):
    model = tiny_model(name, depth=2)
    groups = param_groups(model, weight_decay=0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    not_decayed = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert not decayed & not_decayed
    assert decayed | not_decayed == {id(p) for p in model.parameters()}
    for pname, p in model.named_parameters():
        if p.ndim <= 1:
            assert id(p) in not_decayed, pname
        else:
            assert id(p) in decayed, pname
    norm_params = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    biases = {id(p) for n, p in model.named_parameters() if n.endswith(".bias")}
    norm_free = dict(MODELS[name].knobs).get("norm") == "none"  # resnet_nonorm, rezero_resnet, ...: no norm to find
    assert (bool(norm_params) != norm_free) and norm_params <= not_decayed
    assert biases <= not_decayed


@pytest.mark.parametrize(
    "override",
    [
        "trainer.batch_size=0",
        "trainer.max_steps=0",
        "trainer.eval_every=0",
        "trainer.log_every=0",
        "trainer.grad_clip=0",
        "optimizer.lr=0",
        "optimizer.weight_decay=-0.1",
        "task.sigma=-1",
        "diagnostics.num_images=0",
    ],
)
def test_check_config_rejects_out_of_range(override):
    cfg = compose([override, "trainer.batch_size=8"] if not override.startswith("trainer.batch_size") else [override])
    key = override.split("=")[0]
    with pytest.raises(sbconfig.ConfigError) as info:
        sbconfig.check_config(cfg)
    assert str(info.value).startswith(key + "=")


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.width=0", "model.width=0: must be an integer >= 1"),  # the model's own check
        ("model.depth=-1", "model.depth=-1: must be an integer >= 0"),
        ("model.depth=6", "model.depth=6: needs images of at least"),  # 64 px; dataset.size is 32
        ("model.padding=0", "model.long_skip=concat: valid convs (padding=0) need long_skip none or crop_concat"),
        ("dataset.channels=2", "shapes: channels=2 must be 1"),  # the loader's own check
        ("dataset.train_size=4", "trainer.batch_size=8: larger than the training split (4 images)"),
        ("dataset.val_size=0", "shapes: val_size=0 must be a positive integer"),
    ],
)
def test_check_runnable_rejects_what_model_and_data_refuse(override, message):
    """Once per run, before any folder: the rules the model, the loaders and the sampler own."""
    from skipbench.train.validate import check_runnable

    small = [o for o in ("dataset.train_size=64", "dataset.val_size=8", "trainer.batch_size=8")
             if o.split("=")[0] != override.split("=")[0]]
    with pytest.raises(sbconfig.ConfigError) as info:
        check_runnable(compose([*small, override]), None)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("override", ["optimizer.momentum=1.0", "optimizer.momentum=-0.1"])
def test_check_config_rejects_bad_momentum(override):
    cfg = compose(["optimizer=sgd", override])
    with pytest.raises(sbconfig.ConfigError, match="optimizer.momentum"):
        sbconfig.check_config(cfg)


@pytest.mark.parametrize("override", ["scheduler.min_lr_ratio=1.5", "scheduler.warmup_steps=-1"])
def test_check_config_rejects_bad_schedule(override):
    cfg = compose(["scheduler=cosine", override])
    with pytest.raises(sbconfig.ConfigError, match=override.split("=")[0]):
        sbconfig.check_config(cfg)


def test_check_config_cuda_only_when_available():
    cfg = compose(["trainer.device=cuda"])
    if torch.cuda.is_available():
        sbconfig.check_config(cfg)
    else:
        with pytest.raises(sbconfig.ConfigError, match="trainer.device"):
            sbconfig.check_config(cfg)


@pytest.mark.long
def test_a_run_is_validated_once(tmp_path, monkeypatch, capsys):
    """The CLI checks before Hydra makes the run folder and the task does not check again; ``train()``
    called as an API checks by itself."""
    from skipbench.train.loop import train

    from conftest import run_main

    calls = []
    real = sbconfig.check_config
    monkeypatch.setattr(sbconfig, "check_config", lambda cfg: calls.append(cfg) or real(cfg))
    monkeypatch.chdir(tmp_path)
    run = [*SMALL, "model.depth=1", "trainer.max_steps=1", "trainer.eval_every=1", "trainer.progress=false",
           "diagnostics.images=false", "diagnostics.grad_flow=false"]
    code, _, err = run_main(["train", *run], capsys)
    assert code == 0, err
    assert len(calls) == 1
    calls.clear()
    (tmp_path / "api_run").mkdir()
    summary = train(compose(run), tmp_path / "api_run")
    assert summary["status"] == "completed" and len(calls) == 1
