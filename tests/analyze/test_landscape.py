"""Loss landscapes (skipbench.analyze.landscape): exact against the model's own loss and a closed-form quadratic.

The grid's centre is the eval-mode loss of the batch; filter-normalised directions have each filter's norm
and zero on biases/BatchNorm; on ``L(w) = 1/2 (w - t)^T H (w - t)`` the slices and Hessian extremes are
the closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import tiny_model
from skipbench.analyze import landscape as L


def _gen(k: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(k)


def _mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (out - target).pow(2).mean()


def _trained_like(name: str = "resnet") -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A tiny model with non-trivial BatchNorm statistics, left in *train* mode, and a batch."""
    model = tiny_model(name)
    x = torch.randn((3, 1, 16, 16), generator=_gen(1))
    with torch.no_grad():
        for _ in range(3):
            model(x * 2 + 1)
    return model.train(), x, torch.randn((3, 1, 16, 16), generator=_gen(2))


@pytest.mark.parametrize("chunk", [1, 7])
def test_grid_centre_is_the_models_eval_loss_on_the_batch(chunk):
    model, x, y = _trained_like()
    d1 = L.filter_normalized_direction(model, _gen(3))
    d2 = L.filter_normalized_direction(model, _gen(4))
    axis = torch.linspace(-1, 1, 5)
    grid = L.plane(model, d1, d2, axis, axis, x, y, _mse, chunk=chunk)
    line = L.line(model, d1, axis, x, y, _mse, chunk=chunk)
    assert model.training  # left as it was
    with torch.no_grad():
        expected = float(_mse(model.eval()(x), y))
        train_mode = float(_mse(model.train()(x), y))
    assert abs(expected - train_mode) > 1e-3  # BatchNorm mode matters on this batch
    assert grid[2, 2].item() == pytest.approx(expected, rel=1e-5)
    assert line[2].item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(grid[:, 2], line, rtol=1e-5, atol=1e-6)  # the d1 axis of the plane is the line
    assert grid.std() > 0


def test_filter_normalised_direction_has_each_filters_norm_and_ignores_bias_and_bn():
    model = tiny_model("resnet_nonorm", blocks_per_level=1)  # convs with biases
    bn_model = tiny_model("resnet")
    for m in (model, bn_model):
        d = L.filter_normalized_direction(m, _gen(5))
        params = dict(m.named_parameters())
        assert d.keys() == params.keys()
        multi = [n for n, w in params.items() if w.dim() > 1]
        assert multi
        for n in multi:
            w, dn = params[n].detach(), d[n]
            dims = tuple(range(1, w.dim()))
            torch.testing.assert_close(torch.linalg.vector_norm(dn, dim=dims), torch.linalg.vector_norm(w, dim=dims),
                                       rtol=1e-5, atol=1e-7)
            flat = lambda t: t.reshape(t.shape[0], -1)  # noqa: E731
            cos = torch.nn.functional.cosine_similarity(flat(dn), flat(w), dim=1)
            if w[0].numel() > 1:  # a one-element filter can only be +-w; larger ones are random, not w itself
                assert cos.abs().max() < 0.99
        for n, w in params.items():
            if w.dim() <= 1:
                assert torch.count_nonzero(d[n]) == 0, n
    bn = [n for n, mod in bn_model.named_modules() if isinstance(mod, nn.BatchNorm2d)]
    assert bn and all(f"{n}.weight" in d and f"{n}.bias" in d for n in bn)
    biases = [n for n in dict(model.named_parameters()) if n.endswith(".bias")]
    assert biases  # the norm-free model has conv biases, and they were checked above
    again = L.filter_normalized_direction(bn_model, _gen(5))
    assert all(torch.equal(again[k], d[k]) for k in d)  # seeded
    other = L.filter_normalized_direction(bn_model, _gen(6))
    assert not all(torch.equal(other[k], d[k]) for k in d)


class Quadratic(nn.Module):
    """``forward(x) = w`` (flattened) and a loss ``1/2 (w - t)^T H (w - t)``: the landscape in closed form."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.reshape(-1)


def _quadratic(eigs: list[float]):
    n = len(eigs)
    q, _ = torch.linalg.qr(torch.randn((n, n), generator=_gen(7), dtype=torch.float64))
    h = (q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ q.T)
    t = torch.randn(n, generator=_gen(8), dtype=torch.float64)
    w = t + 0.3 * torch.randn(n, generator=_gen(9), dtype=torch.float64)
    model = Quadratic(w.reshape(2, n // 2))

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        e = out - target
        return 0.5 * e @ h.to(e) @ e

    def closed(v: torch.Tensor) -> torch.Tensor:
        e = v - t
        return 0.5 * e @ h @ e
    return model, loss, t, w, h, closed


def test_quadratic_slices_match_the_closed_form():
    model, loss, t, w, h, closed = _quadratic([-3.0, 1.0, 2.0, 2.5, 3.0, 10.0])
    model.double()
    d1 = L.filter_normalized_direction(model, _gen(10))
    d2 = L.filter_normalized_direction(model, _gen(11))
    a = torch.linspace(-1, 1, 7, dtype=torch.float64)
    b = torch.linspace(-0.5, 0.5, 5, dtype=torch.float64)
    x = torch.zeros(1, dtype=torch.float64)
    grid = L.plane(model, d1, d2, a, b, x, t, loss, chunk=4)
    line = L.line(model, d1, a, x, t, loss, chunk=3)
    u, v = d1["w"].reshape(-1), d2["w"].reshape(-1)
    expected = torch.stack([torch.stack([closed(w + ai * u + bj * v) for bj in b]) for ai in a])
    torch.testing.assert_close(grid.double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(line.double(), torch.stack([closed(w + ai * u) for ai in a]), rtol=1e-5, atol=1e-6)
    # and in closed form along a line: L(w) + a g.u + a^2/2 u^T H u
    g = h @ (w - t)
    torch.testing.assert_close(line.double(), closed(w) + a * (g @ u) + 0.5 * a**2 * (u @ h @ u), rtol=1e-5, atol=1e-6)
    start = {"w": torch.zeros_like(model.w)}
    interp = L.interpolation(model, start, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), x, t, loss)
    torch.testing.assert_close(interp.double(), torch.stack([closed(c * w) for c in (0.0, 0.5, 1.0)]), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("eigs", [[-3.0, 1.0, 2.0, 2.5, 3.0, 10.0], [0.5, 1.0, 2.0, 3.0, 4.0, 8.0]])
def test_hessian_extremes_match_the_closed_form(eigs):
    model, loss, t, *_ = _quadratic(eigs)
    model.double()
    out = L.hessian_extremes(model, torch.zeros(1), t, loss, iters=200, generator=_gen(12))
    assert out["lambda_max"] == pytest.approx(max(eigs), rel=1e-6)
    assert out["lambda_min"] == pytest.approx(min(eigs), rel=1e-6)
    assert out["ratio"] == pytest.approx(abs(min(eigs) / max(eigs)), rel=1e-6)
    assert model.w.grad is None


def test_nonconvex_fraction_of_convex_and_concave_surfaces():
    a = torch.linspace(-1, 1, 9)
    bowl = a[:, None] ** 2 + a[None, :] ** 2
    assert L.nonconvex_fraction(bowl) == 0.0
    assert L.nonconvex_fraction(-bowl) == 1.0
    saddle = a[:, None] ** 2 - a[None, :] ** 2  # rows convex, columns concave
    assert L.nonconvex_fraction(saddle) == pytest.approx(0.5)
