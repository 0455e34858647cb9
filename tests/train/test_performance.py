"""Start-up and resource paths: what they import and record (speeds are measured by scripts/bench.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import cli_env, describe, run_cli


def test_train_help_is_light(tmp_path):
    """``train --help`` composes the config once and imports neither torch nor the models' modules (the
    variant table, ``skipbench.models.registry``, is light: the config's ``model=`` options are made from it)."""
    code = ("import sys; from skipbench.cli import main; rc = main(['train', 'model=resnet', '--help']); "
            "print('IMPORTED', [m for m in ('torch', 'skipbench.models.encdec', 'skipbench.models.blocks', 'matplotlib') if m in sys.modules]); "
            "sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, describe(res)
    assert "IMPORTED []" in res.stdout, res.stdout[-300:]
    assert "name: resnet" in res.stdout  # the overrides change the config shown, as with Hydra's help
    assert "model: autoencoder" in res.stdout and "schema/" not in res.stdout
    assert not list(tmp_path.iterdir())


def test_train_help_bad_option_is_one_line(tmp_path):
    res = run_cli(["train", "model=bogus", "--help"], cwd=tmp_path)
    assert res.returncode == 2, describe(res)
    assert res.stderr.strip().count("\n") == 0 and "bogus" in res.stderr and "unet_concat" in res.stderr


def _train(tmp_path, name: str, overrides: list[str]) -> dict:
    from conftest import TINY, compose

    from skipbench.train.loop import train

    cfg = compose([*TINY, "trainer.max_steps=2", "trainer.eval_every=2", "diagnostics.images=false", *overrides])
    (tmp_path / name).mkdir()
    return train(cfg, tmp_path / name)


@pytest.mark.long
def test_peak_memory_grows_with_the_run(tmp_path):
    small = _train(tmp_path, "small", [])
    big = _train(tmp_path, "big", ["trainer.batch_size=128", "dataset.train_size=128", "model.width=8"])
    assert big["peak_memory_kind"] in ("cpu_peak_rss", "cpu_peak_rss_process")
    assert big["peak_memory_mb"] > small["peak_memory_mb"] + 40, (big["peak_memory_mb"], small["peak_memory_mb"])


def test_peak_reset_forgets_freed_memory():
    """After a reset the peak is what is in use now, not the process's lifetime peak (Linux)."""
    from skipbench.train.memory import peak_mb, reset_peak

    cpu = torch.device("cpu")
    # 400 MB: above the mmap threshold even once keep_freed_memory() has fixed it at 256 MB, so malloc
    # maps it on its own and returns it to the system when freed
    x = torch.ones(100_000_000)
    before, kind = peak_mb(cpu)
    del x
    reset_peak(cpu)
    after, _ = peak_mb(cpu)
    if kind != "cpu_peak_rss":
        pytest.skip("no per-process peak reset here (not Linux): the peak is the process's, monotone")
    assert after < before - 300, (before, after)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_memory_is_max_allocated(tmp_path):
    summary = _train(tmp_path, "cuda", ["trainer.device=cuda"])
    assert summary["peak_memory_kind"] == "cuda_max_allocated" and summary["peak_memory_mb"] > 0


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
def test_cuda_fast_path_trains(tmp_path):
    """bf16 autocast, channels_last and CUDA graphs (torch.compile reduce-overhead) together."""
    summary = _train(tmp_path, "fast", ["trainer.device=cuda", "trainer.amp=true", "trainer.channels_last=true",
                                        "trainer.compile=true", "trainer.compile_mode=reduce-overhead",
                                        "trainer.max_steps=6", "trainer.eval_every=3", "trainer.log_every=2"])
    assert summary["status"] == "completed" and summary["device"].startswith("cuda")
    assert summary["final_train_loss"] is not None and summary["final_train_loss"] < 10


@needs_cuda
def test_cuda_steps_do_not_sync(tmp_path):
    """Between log steps the host never waits for the GPU: the count of synchronising calls does not
    grow with the number of steps (data, sampler indices and noise all stay on the device)."""
    import warnings

    def syncs(name: str, steps: int) -> int:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _train(tmp_path, name, ["trainer.device=cuda", "dataset.train_size=128", f"trainer.max_steps={steps}",
                                        f"trainer.eval_every={steps}", f"trainer.log_every={steps}"])
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    syncs("warm", 4)  # lazy initialisation happens once per process
    assert syncs("short", 4) == syncs("long", 12)


def test_sampler_indices_on_the_data_device():
    from skipbench.data import EpochSampler

    plain, placed = EpochSampler(100, 10, 3), EpochSampler(100, 10, 3, "cpu")
    for step in (0, 9, 10, 25):
        assert torch.equal(plain.indices(step), placed.indices(step))
    if torch.cuda.is_available():
        on_gpu = EpochSampler(100, 10, 3, "cuda")
        assert on_gpu.indices(0).device.type == "cuda" and torch.equal(on_gpu.indices(7).cpu(), plain.indices(7))


@pytest.mark.long
def test_grad_flow_figures_drawn_rarely(tmp_path):
    """Figures every ``figures_every`` steps and at the end; scalars still at every eval."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _train(tmp_path, "figs", ["trainer.max_steps=6", "trainer.eval_every=2", "trainer.log_every=1",
                              "diagnostics.figures_every=4"])
    acc = EventAccumulator(str(tmp_path / "figs"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Images("z_layer/grad_flow/heatmap")] == [4, 6]
    assert [e.step for e in acc.Images("z_layer/grad_flow/by_depth")] == [4, 6]
    assert [e.step for e in acc.Scalars("metric/val_psnr")] == [0, 2, 4, 6]


def test_amp_is_bf16_autocast_on_cpu():
    from conftest import TINY, compose

    from skipbench.train.loop import build

    run = build(compose([*TINY, "trainer.amp=true", "trainer.device=cpu"]))
    x = torch.rand(2, 1, 32, 32)
    with run.autocast():
        assert run.forward(x).dtype == torch.bfloat16
    assert run.model(x).dtype == torch.float32  # outside autocast (activation statistics) stays fp32


@pytest.mark.long
def test_concat_saves_more_activations_than_add(tmp_path):
    """The memory a long concat costs over an add, measured: exact and the same on every device."""
    add = _train(tmp_path, "add", ["model=unet_add", "trainer.max_steps=1", "trainer.eval_every=1"])
    concat = _train(tmp_path, "concat", ["model=unet_concat", "trainer.max_steps=1", "trainer.eval_every=1"])
    plain = _train(tmp_path, "plain", ["model=autoencoder", "trainer.max_steps=1", "trainer.eval_every=1"])
    assert concat["activations_mb"] > add["activations_mb"] >= plain["activations_mb"] > 0


@pytest.mark.parametrize("overrides, fused, channels_last", [
    ([], True, True),  # the CPU defaults: fused optimizer kernel, channels_last convs
    (["optimizer.fused=false", "trainer.channels_last=false"], False, False),
    (["optimizer=sgd", "optimizer.momentum=0.9"], True, True),
])
def test_speed_defaults_are_applied_on_cpu(overrides, fused, channels_last):
    """The speed defaults the README promises reach the optimizer and the model (a dropped one is silent:
    the same numbers, only slower)."""
    from conftest import TINY, compose
    from skipbench.train.loop import build

    run = build(compose([*TINY, "trainer.device=cpu", *overrides]))
    assert bool(run.optimizer.defaults.get("fused")) is fused
    convs = [m.weight for m in run.model.modules()  # one input channel: both layouts have the same strides
             if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and m.in_channels > 1]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) is channels_last for w in convs)
    assert run.channels_last is channels_last


def test_freed_memory_is_kept_on_glibc():
    """The loop asks glibc to keep freed activation buffers (speed measured by scripts, not here): the call
    must apply on glibc and be safe to repeat (every run of a sweep's process makes it)."""
    import platform

    from skipbench.train.memory import keep_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert keep_freed_memory() is True and keep_freed_memory() is True
