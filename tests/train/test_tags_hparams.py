"""tags=[...] reach TensorBoard's HParams (as one comma-joined value) and metrics.json; tags never group a report."""

from __future__ import annotations

import pytest

from conftest import TINY, load_events

import skipbench


def _session_hparams(run_dir) -> dict:
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = load_events(run_dir).PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = HParamsPluginData.FromString(content).session_start_info
    return {k: v.string_value or v.number_value for k, v in info.hparams.items()}


@pytest.mark.long
def test_tags_are_an_hparam_and_in_the_summary_and_do_not_split_groups(tmp_path):
    fast = [*TINY, "trainer.max_steps=2", "trainer.eval_every=2", "trainer.log_every=2"]
    a = skipbench.train([*fast, "tags=[base,x]"], run_dir=tmp_path / "runs" / "a")
    b = skipbench.train([*fast, "tags=[other]", "seed=1"], run_dir=tmp_path / "runs" / "b")
    assert _session_hparams(a.folder)["tags"] == "base,x" and a["tags"] == ["base", "x"]
    assert _session_hparams(b.folder)["tags"] == "other"
    table = skipbench.report(tmp_path / "runs", write=False, as_frame=False)
    assert len(table) == 1 and table[0]["n"] == 2  # same config but tags and seed: one group
    assert [r["n"] for r in skipbench.report(tmp_path / "runs", tags=["base"], write=False, as_frame=False)] == [1]
