"""HParams' parallel-coordinates and scatter views drop a session lacking any declared metric: every
run of every task must log each metric its experiment declares (issue 26)."""

from __future__ import annotations

import pytest
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from conftest import load_events


@pytest.mark.long
def test_every_run_of_every_task_has_every_declared_metric(tiny_sweep):
    sweep, res = tiny_sweep
    assert res.returncode == 0, res.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    tasks = set()
    for job in jobs:
        events = load_events(job)
        exp = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
        declared = {m.name.tag for m in exp.metric_infos}
        missing = declared - set(events.Tags()["scalars"])
        assert declared and not missing, (job.name, sorted(missing))
        tasks.add(job.name.split("_")[0])
    assert len(tasks) >= 3  # denoise, segment, classify ... all checked
