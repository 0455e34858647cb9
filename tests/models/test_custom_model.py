"""model=custom model.target=...: a user's own nn.Module, defined outside the package, trained and
labelled as what it is (console, folder, TensorBoard, report), with the per-layer diagnostics."""

from __future__ import annotations

import json
import textwrap

import pytest

import skipbench
from conftest import TINY, event_files, load_events, run_cli
from skipbench.errors import ConfigError

FAST = [*(o for o in TINY if not o.startswith("model.")), "trainer.max_steps=4", "trainer.eval_every=2", "trainer.log_every=2"]

USER_MODULE = textwrap.dedent('''
    from torch import nn

    class TinyNet(nn.Module):
        """Three convs; `spare` is never used, and `tied` (decoder) shares the encoder conv's weight."""
        def __init__(self, in_channels, out_channels, hidden=4, tie=False):
            super().__init__()
            self.inp = nn.Conv2d(in_channels, hidden, 3, padding=1)
            self.mid = nn.Conv2d(hidden, hidden, 3, padding=1)
            self.out = nn.Conv2d(hidden, out_channels, 3, padding=1)
            self.spare = nn.Linear(3, 3)
            self.tie = tie
            if tie:
                self.tied = nn.ConvTranspose2d(hidden, in_channels, 3, padding=1)
                self.tied.weight = self.inp.weight

        def forward(self, x):
            h = self.mid(self.inp(x).relu()).relu()
            y = self.out(h)
            return y + self.tied(h) if self.tie else y

    def build(in_channels, out_channels):
        return TinyNet(in_channels, out_channels, hidden=3)

    def not_a_model():
        return 42
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "usernets.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_users_module_is_labelled_as_itself_everywhere(user_module):
    run = skipbench.train([*FAST, "model=custom", "model.target=usernets.TinyNet", "+model.kwargs.hidden=5"])
    assert run["status"] == "completed" and run["model"] == "TinyNet"
    assert run.folder.name.endswith("_denoise_TinyNet")
    assert run["params"] == (1 * 9 * 5 + 5) + (5 * 9 * 5 + 5) + (5 * 9 + 1) + 12  # hidden=5 reached the model
    events = load_events(run.folder)
    # layers named from its own module tree, in registration order
    assert [t for t in events.Tags()["scalars"] if t.startswith("z_layer/grad_norm/0")] == [
        "z_layer/grad_norm/00_inp/conv", "z_layer/grad_norm/01_mid/conv", "z_layer/grad_norm/02_out/conv", "z_layer/grad_norm/03_spare/linear"]
    hparams = (run.folder / ".hydra" / "config.yaml").read_text()
    assert "target: usernets.TinyNet" in hparams
    table = skipbench.report(run.folder.parent, write=False, as_frame=False, group_by=["model"])
    assert [row["model"] for row in table] == ["TinyNet"]


def test_a_builder_function_is_named_module_dot_function(user_module):
    cfg = skipbench.compose(["model=custom", "model.target=usernets.build"])
    assert cfg.model.name == "usernets.build"
    assert skipbench.compose(["model=custom", "model.target=usernets.build", "model.name=mine"]).model.name == "mine"


def test_tied_and_unused_parameters_train_and_are_stated(user_module, caplog):
    caplog.set_level("INFO", logger="skipbench")
    run = skipbench.train([*FAST, "model=custom", "model.target=usernets.TinyNet", "+model.kwargs.tie=true"])
    assert run["status"] == "completed"
    text = caplog.text
    assert "tied.weight is the same tensor as inp.weight (weight-tied" in text
    assert "2 parameter tensor(s) got no gradient (unused by forward" in text and "spare.weight" in text


@pytest.mark.parametrize("override, message", [
    ("model.target=usernets.nope", r"^model\.target=usernets\.nope: usernets has no nope$"),
    ("model.target=nomodule.Net", r"^model\.target=nomodule\.Net: cannot import nomodule"),
    ("model.target=usernets.not_a_model", r"returned a int, not a torch\.nn\.Module"),
    ("model.target=torch.nn.Identity", None),  # fits denoise: in = out
])
def test_bad_targets_are_one_line_before_any_folder(user_module, override, message):
    if message is None:
        with pytest.raises(ConfigError, match=r"output shape \[1, 1, 32, 32\] .*this task needs \[1, 10\]"):
            skipbench.train([*(o for o in FAST if not o.startswith("dataset.")), "model=custom", override,
                             "task=classify", "dataset=digits"])
    else:
        with pytest.raises(ConfigError, match=message):
            skipbench.train([*FAST, "model=custom", override])
    assert not (user_module / "outputs").exists()


def test_unset_target_says_what_to_give():
    with pytest.raises(ConfigError, match=r"^model\.target is not set: .*model\.target=mynet\.build"):
        skipbench.train([*FAST, "model=custom"])


@pytest.mark.long
def test_the_cli_console_line_names_the_users_model(user_module):
    proc = run_cli(["train", *FAST, "model=custom", "model.target=usernets.build"], user_module)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "model usernets.build (your nn.Module usernets.build):" in out and "unet_concat" not in out
    [folder] = (user_module / "outputs" / "runs").iterdir()
    assert folder.name.endswith("_denoise_usernets.build")
    assert json.loads((folder / "metrics.json").read_text())["model"] == "usernets.build"
    assert event_files(folder)
