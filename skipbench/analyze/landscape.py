"""Loss landscapes (Li, Xu, Taylor, Studer & Goldstein 2018) and Hessian extremes at a minimum.

Pure functions on ``(model, inputs, target, loss_fn)``: ``loss_fn(output, target) -> scalar`` (the task's
loss), ``inputs [B, ...]`` one fixed evaluation batch. The model is evaluated in eval mode (BatchNorm
uses its trained running statistics, as the paper's code does), never modified: parameter sets are
passed to :func:`torch.func.functional_call`, many grid points at once through :func:`torch.func.vmap`.

Directions are *filter-normalised* (the paper's ``--xnorm filter --xignore biasbn``): Gaussian, then each
filter ``i`` (slice ``i`` along dim 0 of a conv/linear weight) scaled to the norm of the same filter of
the weights, ``d_i <- d_i / ||d_i|| * ||w_i||``; every 1-d parameter (biases, BatchNorm weights and
shifts) gets direction 0. So a step of 1 along ``d`` changes every filter by its own size.

Roughness (defined before any result was looked at, for claim 10): the fraction of interior grid
points that violate convexity along a grid line, ``L[i-1] + L[i+1] - 2 L[i] < 0`` (rows and columns),
and ``|lambda_min / lambda_max|`` of the Hessian at the minimum (Li et al. Fig. 7).
"""

from __future__ import annotations

import warnings
from typing import Callable, Iterable, Mapping

import torch
from torch import nn
from torch.func import functional_call, vmap

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def weights(model: nn.Module) -> Params:
    """The model's parameters by name, detached (the point ``w`` the landscape is centred on)."""
    return {n: p.detach() for n, p in model.named_parameters()}


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> Params:
    """A random direction with the parameters' shapes, filter-normalised; 1-d parameters get zeros."""
    out = {}
    for name, w in weights(model).items():
        if w.dim() <= 1:  # bias and BatchNorm: ignored (--xignore biasbn)
            out[name] = torch.zeros_like(w)
            continue
        d = torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device)
        dims = tuple(range(1, w.dim()))
        norm = lambda t: torch.linalg.vector_norm(t, dim=dims, keepdim=True)  # noqa: E731
        d = d * (norm(w) / norm(d).clamp_min(1e-10))
        out[name] = d
    return out


def combine(base: Params, terms: Iterable[tuple[torch.Tensor, Params]]) -> Params:
    """``base + sum_j c_j * d_j`` for a batch of points: ``c_j: [P]``; returns stacked ``[P, *shape]`` tensors."""
    terms = list(terms)
    out = {}
    for name, w in base.items():
        x = w.unsqueeze(0)
        for c, d in terms:
            x = x + c.view(-1, *([1] * w.dim())).to(w) * d[name].unsqueeze(0)
        out[name] = x
    return out


def losses_at(model: nn.Module, points: Params, inputs: torch.Tensor, target: torch.Tensor, loss_fn: LossFn,
              chunk: int = 16, progress: Callable = iter) -> torch.Tensor:
    """Loss at each of ``P`` stacked parameter sets ``points`` (``[P, *shape]`` each), eval mode: ``[P]``.

    ``chunk`` points go through one vmapped forward (memory grows with it; 1 = a plain loop). The caller
    holds all ``P`` sets at once: for a grid, :func:`losses_along` builds them ``chunk`` at a time."""
    n = next(iter(points.values())).shape[0]
    return _evaluate(model, lambda s, e: {k: v[s:e] for k, v in points.items()}, n, inputs, target, loss_fn,
                     chunk, progress)


def losses_along(model: nn.Module, base: Params, dirs: list[Params], coeffs: torch.Tensor, inputs: torch.Tensor,
                 target: torch.Tensor, loss_fn: LossFn, chunk: int = 16, progress: Callable = iter) -> torch.Tensor:
    """Loss at ``base + sum_j coeffs[p, j] * dirs[j]`` for each row ``p`` of ``coeffs [P, J]``: ``[P]``.

    Only ``chunk`` parameter sets exist at any time (a 21x21 grid of the default model built at once
    took ~0.9 GB), so peak memory depends on ``chunk``, not on ``P``. Each point's parameters are the
    same elementwise sums :func:`combine` gives for all points at once, so the losses are bitwise equal."""
    if coeffs.dim() != 2 or coeffs.shape[1] != len(dirs):
        raise ValueError(f"coeffs must be [P, {len(dirs)}], got {list(coeffs.shape)}")

    def points(s: int, e: int) -> Params:
        return combine(base, [(coeffs[s:e, j], d) for j, d in enumerate(dirs)])
    return _evaluate(model, points, coeffs.shape[0], inputs, target, loss_fn, chunk, progress)


def _evaluate(model: nn.Module, points: Callable[[int, int], Params], n: int, inputs, target, loss_fn: LossFn,
              chunk: int, progress: Callable) -> torch.Tensor:
    """``[n]`` losses, the parameter sets of points ``s .. e-1`` made by ``points(s, e)`` when needed."""
    buffers = dict(model.named_buffers())

    def one(params: Params) -> torch.Tensor:
        return loss_fn(functional_call(model, (params, buffers), (inputs,)), target)

    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # vmap has no batching rule for the pooled head's as_strided_: it loops there, correctly
            warnings.filterwarnings("ignore", message=".*batching rule.*")
            for start in progress(range(0, n, chunk)):
                part = points(start, min(start + chunk, n))
                if chunk == 1:
                    out.append(one({k: v[0] for k, v in part.items()}).reshape(1))
                else:
                    out.append(vmap(one)(part))
                del part  # free this chunk's parameter sets before the next is built
    finally:
        model.train(was_training)
    return torch.cat(out).float()


def line(model: nn.Module, d: Params, alphas: torch.Tensor, inputs, target, loss_fn: LossFn, **kw) -> torch.Tensor:
    """``L(w + a d)`` for each ``a`` in ``alphas [A]``: ``[A]``."""
    return losses_along(model, weights(model), [d], alphas.view(-1, 1), inputs, target, loss_fn, **kw)


def plane(model: nn.Module, d1: Params, d2: Params, alphas: torch.Tensor, betas: torch.Tensor, inputs, target,
          loss_fn: LossFn, **kw) -> torch.Tensor:
    """``L(w + a d1 + b d2)`` on the grid ``alphas [A] x betas [B]``: ``[A, B]`` (row ``i``: ``a = alphas[i]``),
    ``chunk`` grid points built and evaluated at a time (bounded memory whatever ``A x B``)."""
    a, b = torch.meshgrid(alphas, betas, indexing="ij")
    coeffs = torch.stack([a.reshape(-1), b.reshape(-1)], 1)
    return losses_along(model, weights(model), [d1, d2], coeffs, inputs, target, loss_fn, **kw).view(
        len(alphas), len(betas))


def interpolation(model: nn.Module, start: Params, alphas: torch.Tensor, inputs, target, loss_fn: LossFn,
                  **kw) -> torch.Tensor:
    """Goodfellow et al. (2015): ``L((1 - a) start + a w)`` for each ``a``; ``a = 0`` is ``start``, 1 the model."""
    w = weights(model)
    delta = {k: w[k] - start[k] for k in w}
    return losses_along(model, start, [delta], alphas.view(-1, 1), inputs, target, loss_fn, **kw)


def nonconvex_fraction(grid: torch.Tensor) -> float:
    """Fraction of interior points, along rows and along columns of ``grid [A, B]`` (or a line ``[A]``),
    where the second difference is negative (``L[i-1] + L[i+1] - 2 L[i] < -tol``; ``tol`` = 1e-6 of the
    largest loss, float noise): 0 for a convex surface."""
    g = grid.double().unsqueeze(0) if grid.dim() == 1 else grid.double()
    tol = 1e-6 * g.abs().max().item()
    parts = [g[:, :-2] + g[:, 2:] - 2 * g[:, 1:-1]]
    if g.shape[0] > 2:
        parts.append(g[:-2] + g[2:] - 2 * g[1:-1])
    second = torch.cat([p.reshape(-1) for p in parts])
    return float((second < -tol).double().mean()) if second.numel() else 0.0


def hessian_extremes(model: nn.Module, inputs, target, loss_fn: LossFn, iters: int = 20,
                     generator: torch.Generator | None = None) -> dict[str, float]:
    """Largest and smallest Hessian eigenvalues of the loss on one batch (eval mode), by power iteration
    with Hessian-vector products: ``lambda_max`` first (the largest in magnitude, positive at a minimum),
    then power iteration on ``H - lambda_max I`` gives ``lambda_min``. Returns both and ``|min / max|``."""
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.eval()
    try:
        grads = torch.autograd.grad(loss_fn(model(inputs), target), params, create_graph=True)

        def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
            return [h.detach() for h in torch.autograd.grad(grads, params, v, retain_graph=True)]

        def power(shift: float) -> float:
            v = [torch.randn(p.shape, generator=generator).to(p) for p in params]
            lam = 0.0
            for _ in range(iters):
                norm = torch.sqrt(sum((x * x).sum() for x in v))
                v = [x / norm for x in v]
                hv = [h - shift * x for h, x in zip(hvp(v), v)]
                lam = float(sum((x * h).sum() for x, h in zip(v, hv)))
                v = hv
            return lam + shift

        top = power(0.0)
        bottom = power(top)
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return {"lambda_max": top, "lambda_min": bottom,
            "ratio": abs(bottom / top) if top != 0 else float("nan"), "iters": iters}


def to_params(state: Mapping[str, torch.Tensor], like: Params) -> Params:
    """The entries of a ``state_dict`` that are parameters of ``like`` (buffers left out)."""
    return {k: state[k].detach().to(like[k]) for k in like}
