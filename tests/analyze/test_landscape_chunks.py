"""The 2-d slice is built ``chunk`` grid points at a time (bounded memory): it equals the one-shot grid
(every point's parameters built at once) exactly, and no more than ``chunk`` points exist at a time."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_model
from skipbench.analyze import landscape as L


def _mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (out - target).pow(2).mean()


def _setup():
    model = tiny_model("resnet").eval()
    x = torch.randn((2, 1, 16, 16), generator=torch.Generator().manual_seed(1))
    y = torch.randn((2, 1, 16, 16), generator=torch.Generator().manual_seed(2))
    d1 = L.filter_normalized_direction(model, torch.Generator().manual_seed(3))
    d2 = L.filter_normalized_direction(model, torch.Generator().manual_seed(4))
    return model, x, y, d1, d2


@pytest.mark.parametrize("chunk", [1, 4, 7])
def test_chunked_plane_equals_the_one_shot_grid_exactly(chunk):
    model, x, y, d1, d2 = _setup()
    a, b = torch.linspace(-1, 1, 5), torch.linspace(-0.5, 1, 4)
    grid = L.plane(model, d1, d2, a, b, x, y, _mse, chunk=chunk)
    aa, bb = torch.meshgrid(a, b, indexing="ij")
    every = L.combine(L.weights(model), [(aa.reshape(-1), d1), (bb.reshape(-1), d2)])  # all 20 points at once
    one_shot = L.losses_at(model, every, x, y, _mse, chunk=chunk).view(5, 4)
    assert torch.equal(grid, one_shot)  # same points, same forwards: bitwise
    # one vmapped forward over all 20 points: the same losses up to float reordering
    torch.testing.assert_close(grid, L.losses_at(model, every, x, y, _mse, chunk=20).view(5, 4), rtol=1e-5, atol=1e-6)
    assert grid[2].std() > 0 and grid[:, 1].std() > 0  # rows and columns really differ (a and b both reached)


def test_no_more_than_chunk_points_are_built_at_a_time(monkeypatch):
    model, x, y, d1, d2 = _setup()
    sizes = []
    real = L.combine

    def spy(base, terms):
        out = real(base, terms)
        sizes.append(next(iter(out.values())).shape[0])
        return out
    monkeypatch.setattr(L, "combine", spy)
    axis = torch.linspace(-1, 1, 5)
    L.plane(model, d1, d2, axis, axis, x, y, _mse, chunk=3)
    assert sizes == [3] * 8 + [1]  # 25 points: 8 chunks of 3 and the last one
