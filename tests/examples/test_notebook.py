"""examples/compare_skips.ipynb runs end to end in a real Jupyter kernel (nbclient), at a smoke budget."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "compare_skips.ipynb"


@pytest.mark.slow  # a kernel, five tiny runs and two plots: ~1 min on 2 busy cores
def test_the_example_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SKIPBENCH_NB_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    root = str(NOTEBOOK.parents[1])  # the checkout's skipbench, whatever is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"notebook ran in {time.perf_counter() - start:.1f} s")
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "unet_concat" in outputs and "final val PSNR" in outputs and "04_dec0/conv1" not in outputs
    assert "06_dec0/conv1" in outputs  # the per-layer cost of add vs concat
    assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert sorted(p.name for p in (tmp_path / "outputs" / "notebook_compare").iterdir()
                  if p.is_dir() and not p.name.startswith("_")) == [
        "denoise_autoencoder", "denoise_densenet", "denoise_resnet", "denoise_unet_add", "denoise_unet_concat"]
