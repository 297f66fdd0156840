"""Least-squares fitting of an LSELayer: Adam (cosine schedule) then L-BFGS, fp64, seeded."""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.layers import LSELayer

__all__ = ["fit_layer", "mse"]


def mse(layer: LSELayer, x: Tensor, target: Tensor) -> Tensor:
    """(1/P) Σ_p (f_ε(x_p) − target_p)²;  x [P, d], target [P]."""
    return ((layer(x) - target) ** 2).mean()


def fit_layer(
    layer: LSELayer, x: Tensor, target: Tensor, adam_steps: int, lbfgs_iters: int,
    lr: float = 0.02,
) -> float:
    """Minimise the MSE in place (Adam, then L-BFGS with strong-Wolfe line search); final MSE."""
    params = list(layer.parameters())
    if adam_steps > 0:
        opt = torch.optim.Adam(params, lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, adam_steps)
        for _ in range(adam_steps):
            opt.zero_grad()
            mse(layer, x, target).backward()
            opt.step()
            sched.step()
    if lbfgs_iters > 0:
        lbfgs = torch.optim.LBFGS(params, max_iter=lbfgs_iters, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            lbfgs.zero_grad()
            loss = mse(layer, x, target)
            loss.backward()
            return loss

        lbfgs.step(closure)
    with torch.no_grad():
        return float(mse(layer, x, target))
