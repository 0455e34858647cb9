"""Resume restores everything: the schedule mid-warm-up, the best value and its step, the training
time, and the event files (no step twice when resuming from a checkpoint older than the last log)."""

from __future__ import annotations

import math
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from skipbench.train.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from skipbench.train.loop import build, train
from skipbench.train.schedule import warmup_cosine

from conftest import compose, event_files, load_events, read_metrics

TINY = ["dataset.train_size=32", "dataset.val_size=8", "trainer.batch_size=8", "model.width=4", "model.depth=1",
        "trainer.progress=false", "diagnostics.images=false", "diagnostics.grad_flow=false",
        "diagnostics.activations=false", "diagnostics.update_ratios=false", "diagnostics.weight_norms=false"]


def _train(run_dir: Path, overrides: list[str], resume: bool = False) -> dict:
    run_dir.mkdir(exist_ok=True)
    extra = [f"resume={run_dir}"] if resume else []
    return train(compose([*TINY, *overrides, *extra]), run_dir)


def _steps(run_dir: Path, tag: str) -> list[int]:
    return [e.step for e in load_events(run_dir).Scalars(tag)]


def _values(run_dir: Path, tag: str) -> list[float]:
    return [e.value for e in load_events(run_dir).Scalars(tag)]


COSINE = ["optimizer=sgd", "optimizer.lr=0.1", "scheduler=cosine", "scheduler.warmup_steps=6",
          "trainer.log_every=1", "trainer.eval_every=2"]


@contextmanager
def _ctrl_c_at_step(n: int):
    """A real SIGINT during optimizer step ``n``: the loop finishes that step, saves and stops."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    count = [0]

    def hook(optimizer, args, kwargs) -> None:
        count[0] += 1
        if count[0] == n:
            signal.raise_signal(signal.SIGINT)

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def test_cosine_schedule_resumed_mid_warmup_continues_exactly(tmp_path):
    straight = _train(tmp_path / "straight", [*COSINE, "trainer.max_steps=10"])
    with _ctrl_c_at_step(4):  # stops in warm-up (6 steps)
        stopped = _train(tmp_path / "split", [*COSINE, "trainer.max_steps=10"])
    assert stopped["status"] == "interrupted" and stopped["steps"] == 4
    resumed = _train(tmp_path / "split", [*COSINE, "trainer.max_steps=10"], resume=True)
    assert resumed["steps"] == straight["steps"] == 10
    # the lr of every step, across both sessions' event files, is the uninterrupted schedule's
    expected = [0.1 * f for f in _factors(10, warmup=6)]
    assert _steps(tmp_path / "split", "lr") == list(range(1, 11))
    assert _values(tmp_path / "split", "lr") == pytest.approx(expected, rel=1e-6)
    assert _values(tmp_path / "straight", "lr") == pytest.approx(expected, rel=1e-6)
    a, b = (load_checkpoint(tmp_path / d / CHECKPOINT) for d in ("straight", "split"))
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 10
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert resumed["final_train_loss"] == straight["final_train_loss"]


def _factors(steps: int, warmup: int) -> list[float]:
    """The lr factor of optimizer steps 1..steps, by hand: linear warm-up, then the cosine."""
    out = []
    for s in range(steps):  # the scheduler has stepped s times before step s + 1
        if s < warmup:
            out.append((s + 1) / warmup)
        else:
            out.append(0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup))))
    return out


def test_factors_match_the_schedule_module():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, total_steps=10, warmup_steps=6)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx(_factors(10, 6))


@pytest.mark.parametrize("total,warmup", [(4, 3), (10, 6)])
def test_schedule_edges(total, warmup):
    """One decay step after warm-up (total = warmup + 1), the default warm-up, and steps past the
    end (a run resumed with a larger max_steps keeps the minimum, it does not rise again)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, total_steps=total, warmup_steps=warmup, min_lr_ratio=0.1)
    seen = []
    for _ in range(total + 5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.1 + 0.9 * f for f in _factors(total, warmup)]
    expected[:warmup] = [(s + 1) / warmup for s in range(warmup)]  # warm-up ignores min_lr_ratio
    assert seen[:total] == pytest.approx(expected)
    assert seen[total:] == pytest.approx([0.1] * 5)
    default = warmup_cosine(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), total_steps=1000)
    assert default.get_last_lr()[0] == pytest.approx(1 / 100)  # warmup_steps defaults to 100


def test_best_best_step_and_train_time_are_carried(tmp_path):
    run = tmp_path / "run"
    common = ["trainer.log_every=2", "trainer.eval_every=2"]
    _train(run, [*common, "trainer.max_steps=2"])
    # A best value no real eval of this run can reach, an early best step, a long training time:
    # the resumed run can only report them if it carried them over.
    state = load_checkpoint(run / CHECKPOINT)
    state.update(best=99.0, best_step=1, train_time=1000.0, data_time=10.0, wall_time=2000.0)
    save_checkpoint(run / CHECKPOINT, state)
    summary = _train(run, [*common, "trainer.max_steps=4"], resume=True)
    assert summary["steps"] == 4
    assert summary["best_val_psnr"] == 99.0 and summary["best_step"] == 1
    assert 1000.0 < summary["train_time_s"] < 1000.0 + summary["session_wall_s"]
    # wall time counts every session too (issue 26: 3.5 s of wall against 112.9 s of training after a resume)
    assert summary["wall_time_s"] == pytest.approx(2000.0 + summary["session_wall_s"], abs=0.002)
    assert summary["wall_time_s"] > summary["train_time_s"]
    saved = load_checkpoint(run / CHECKPOINT)
    assert saved["train_time"] > 1000.0 and saved["data_time"] > 10.0 and saved["best"] == 99.0
    assert 2000.0 < saved["wall_time"] <= summary["wall_time_s"] + 0.002
    assert load_events(run).Scalars("metric/best_val_psnr")[-1].value == 99.0


def test_run_state_round_trip():
    cfg = compose([*TINY, "trainer.max_steps=2", "optimizer=sgd", "scheduler=cosine", "scheduler.warmup_steps=3"])
    a = build(cfg)
    a.optimizer.zero_grad()
    a.model(a.task.make_batch(a.data.train.take(slice(0, 8)), torch.Generator().manual_seed(0))[0]).sum().backward()
    a.optimizer.step()
    a.scheduler.step()
    a.step, a.best, a.best_step, a.train_time, a.data_time = 7, 12.5, 6, 3.25, 0.5
    b = build(cfg)
    b.load_state_dict(a.state_dict())
    assert (b.step, b.best, b.best_step, b.train_time, b.data_time) == (7, 12.5, 6, 3.25, 0.5)
    old = a.state_dict()
    del old["data_time"]  # a checkpoint written before data_time was recorded
    c = build(cfg)
    c.load_state_dict(old)
    assert c.data_time == 0.0 and c.train_time == 3.25
    assert b.scheduler.state_dict() == a.scheduler.state_dict()
    assert b.optimizer.param_groups[0]["lr"] == a.optimizer.param_groups[0]["lr"] != cfg.optimizer.lr
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ma = a.optimizer.state_dict()["state"]
    mb = b.optimizer.state_dict()["state"]
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k]["momentum_buffer"], mb[k]["momentum_buffer"]) for k in ma)


def test_resume_from_an_older_checkpoint_leaves_no_step_twice(tmp_path):
    """Stopped after step 3's checkpoint, run on to 6 (logging 4..6), then resumed from the step-3
    checkpoint again: TensorBoard must show each step once, with the values of the last session."""
    run, straight = tmp_path / "run", tmp_path / "straight"
    common = ["trainer.log_every=1", "trainer.eval_every=3"]
    _train(straight, [*common, "trainer.max_steps=6"])
    _train(run, [*common, "trainer.max_steps=3"])
    shutil.copy(run / CHECKPOINT, tmp_path / "step3.pt")
    _train(run, [*common, "trainer.max_steps=6"], resume=True)
    shutil.copy(tmp_path / "step3.pt", run / CHECKPOINT)  # e.g. the job was killed before its last save
    _train(run, [*common, "trainer.max_steps=6"], resume=True)
    assert len(event_files(run)) == 3
    for tag in ("loss/mse/train", "lr", "loss/mse/val"):
        steps = _steps(run, tag)
        assert steps == sorted(set(steps)), f"{tag}: a step logged twice: {steps}"
        assert steps == _steps(straight, tag), tag
    assert _values(run, "loss/mse/train") == pytest.approx(_values(straight, "loss/mse/train"), abs=1e-6)
    assert read_metrics(run)["steps"] == 6


class _NotATensor:  # anything a weights-only unpickler must refuse
    pass


def test_checkpoints_load_weights_only_onto_the_asked_device(tmp_path):
    save_checkpoint(tmp_path / "ok.pt", {"model": {"w": torch.ones(2)}, "step": 3})
    loaded = load_checkpoint(tmp_path / "ok.pt", "meta")  # map_location is honoured
    assert loaded["model"]["w"].device.type == "meta" and loaded["step"] == 3
    # a checkpoint is loaded with weights_only=True: arbitrary pickled objects are refused, not run
    torch.save({"payload": _NotATensor()}, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|global"):
        load_checkpoint(tmp_path / "bad.pt")
