"""Per-layer cost and health: the layer table (shape, params, FLOPs, saved bytes), max |grad| per layer,
dead layers, optional histograms, and `skipbench summary`."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch

import skipbench
from conftest import TINY, load_events, tiny_model
from skipbench.cli import main as cli_main
from skipbench.train.diagnostics import GradNorms, count_flops, skeleton_layers
from skipbench.train.layer_table import layer_table
from skipbench.train.memory import saved_tensor_bytes

FAST = [*TINY, "trainer.max_steps=6", "trainer.eval_every=3", "trainer.log_every=1"]


@pytest.mark.parametrize("name", ["unet_concat", "resnet", "densenet", "highway"])
def test_rows_add_up_to_the_models_totals(name):
    model = tiny_model(name, depth=2)
    x = torch.rand(1, 1, 16, 16)
    rows = layer_table(model, x)
    assert [r.layer for r in rows[:-1]] == [n for n, _ in skeleton_layers(model)[0]]  # TensorBoard's names, by depth
    assert sum(r.flops for r in rows) == count_flops(model, x)
    model.eval()
    with torch.enable_grad(), saved_tensor_bytes(model) as saved:
        model(x)
    assert sum(r.saved_bytes for r in rows) == saved()
    assert sum(r.params for r in rows) <= sum(p.numel() for p in model.parameters())


def test_concat_doubles_the_first_decoder_convs_input_and_its_cost():
    x = torch.rand(1, 1, 16, 16)
    add, concat = ({r.layer: r for r in layer_table(tiny_model(n, depth=2, width=4), x)} for n in ("unet_add", "unet_concat"))
    a, c = add["04_dec0/conv1"], concat["04_dec0/conv1"]
    assert a.output_shape == c.output_shape == [4, 16, 16]
    assert c.flops == 2 * a.flops and c.params == 2 * a.params == 8 * 4 * 9  # 3x3 convs, no bias (a norm follows)
    assert c.saved_bytes - a.saved_bytes == 4 * 16 * 16 * 4  # its input is 4 fp32 channels wider
    assert add["04_dec0/conv2"].flops == concat["04_dec0/conv2"].flops


def test_grad_max_is_each_layers_largest_absolute_gradient():
    model = tiny_model("unet_concat", depth=2)
    model(torch.rand(2, 1, 16, 16)).square().mean().backward()
    g = GradNorms(model, grad_max=True)
    out = dict(zip(g.tags, g().tolist()))
    for name, m in skeleton_layers(model)[0]:
        assert out[f"z_layer/grad_max/{name}"] == pytest.approx(m.weight.grad.abs().max().item())
        assert out[f"z_layer/grad_norm/{name}"] == pytest.approx(m.weight.grad.norm().item(), rel=1e-5)


DEADNET = textwrap.dedent('''
    from torch import nn

    class HalfDead(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.live = nn.Conv2d(in_channels, out_channels, 3, padding=1)
            self.dead = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        def forward(self, x):
            return self.live(x) + 0.0 * self.dead(x)
''')


def test_a_layer_with_exactly_zero_gradient_is_flagged_dead(tmp_path, monkeypatch):
    (tmp_path / "deadnet.py").write_text(DEADNET)
    monkeypatch.syspath_prepend(str(tmp_path))
    fast = [o for o in FAST if not o.startswith("model.")]
    run = skipbench.train([*fast, "model=custom", "model.target=deadnet.HalfDead", "diagnostics.dead_after=2"],
                          run_dir=tmp_path / "run")
    assert run["dead_layers"] == ["01_dead/conv"]
    dead = [(e.step, e.value) for e in load_events(run.folder).Scalars("health/dead_layers")]
    assert dead[0] == (1, 0) and dead[1] == (2, 1) and dead[-1] == (6, 1)  # flagged at the 2nd zero log step
    assert load_events(run.folder).Scalars("z_layer/grad_max/01_dead/conv")[-1].value == 0.0


@pytest.mark.long
def test_the_run_folder_and_tensorboard_get_the_table_and_histograms_only_when_asked(tmp_path):
    run = skipbench.train([*FAST, "diagnostics.histograms=true"], run_dir=tmp_path / "on")
    table = json.loads((run.folder / "layers.json").read_text())
    assert table["model"] == "unet_concat" and table["layers"][0]["layer"] == "00_enc0/conv1"
    assert "| 00_enc0/conv1 | Conv2d |" in (run.folder / "layers.md").read_text()
    events = load_events(run.folder)
    assert "model/layers" in events.Tags()["tensors"] or "model/layers/text_summary" in events.Tags()["tensors"]
    assert "hist_weight/00_enc0/conv1" in events.Tags()["histograms"]
    assert "hist_grad/00_enc0/conv1" in events.Tags()["histograms"]
    off = skipbench.train(FAST, run_dir=tmp_path / "off")
    assert not load_events(off.folder).Tags()["histograms"] and off["dead_layers"] == []


def test_summary_command_prints_one_table_per_model(capsys):
    assert cli_main(["summary", "model=unet_add,unet_concat", *TINY, "--json"]) == 0
    tables = json.loads(capsys.readouterr().out)
    assert list(tables) == ["unet_add", "unet_concat"]
    by = {m: {r["layer"]: r for r in rows} for m, rows in tables.items()}
    assert by["unet_concat"]["06_dec0/conv1"]["flops"] == 2 * by["unet_add"]["06_dec0/conv1"]["flops"]
    assert cli_main(["summary", "model=nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_a_layer_is_flagged_at_exactly_dead_after_zero_log_steps():
    from omegaconf import OmegaConf

    from skipbench.train.diagnostics import Diagnostics

    model = tiny_model("autoencoder", depth=1)
    diag = Diagnostics(model, OmegaConf.create({"grad_norms": True, "weight_norms": False, "update_ratios": False,
                                                "activations": False, "grad_flow": False, "dead_after": 2}))
    first = diag.names[0]
    norms = [0.0] + [1.0] * (len(diag.names) - 1)
    assert diag._dead_layers(norms) == {"health/dead_layers": 0.0} and diag.dead == []
    assert diag._dead_layers(norms) == {"health/dead_layers": 1.0} and diag.dead == [first]
    assert diag._dead_layers([1.0] * len(diag.names)) == {"health/dead_layers": 0.0} and diag.dead == [first]
