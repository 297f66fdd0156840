"""The change of variables between an LSE layer (W, b) and Hopf–Cole atoms (y, g).

With gauge t > 0 and metric Σ ≻ 0 (identity when None):

    y_j = 2t·Σ·W_j,     g_j = −b_j − t·W_jᵀ Σ W_j
    W_j = Σ⁻¹ y_j/(2t), b_j = −g_j − y_jᵀ Σ⁻¹ y_j/(4t)

Shapes: W, y [..., N, d]; b, g [..., N]; Σ [d, d].
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.math._checks import Scalar, atoms_match, metric_spd, positive

__all__ = ["apply_metric_inverse", "atoms_from_lse", "lse_from_atoms", "quadratic_form"]


def quadratic_form(v: Tensor, metric: Tensor | None = None, inverse: bool = False) -> Tensor:
    """vᵀ Σ v (or vᵀ Σ⁻¹ v with inverse=True) over the last dimension: [..., d] → [...]."""
    if metric is None:
        return (v * v).sum(-1)
    mv = apply_metric_inverse(v, metric) if inverse else v @ metric  # [..., d]
    return (mv * v).sum(-1)


def apply_metric_inverse(v: Tensor, metric: Tensor) -> Tensor:
    """Σ⁻¹ v for each row v of [..., d] (Σ symmetric, so row form v Σ⁻¹), by a Cholesky solve."""
    chol = torch.linalg.cholesky(metric.to(v.dtype))  # [d, d]
    flat = v.reshape(-1, v.shape[-1]).T  # [d, R]
    sol = torch.cholesky_solve(flat, chol)  # [d, R]
    return sol.T.reshape(v.shape)


def atoms_from_lse(
    W: Tensor, b: Tensor, t: Scalar = 1.0, metric: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(W, b) → atoms (y, g): y_j = 2t·Σ·W_j, g_j = −b_j − t·W_jᵀΣW_j."""
    where = "hjplug.math.atoms_from_lse"
    positive("t", t, where)
    atoms_match("W", W, "b", b, where)
    metric_spd(metric, W.shape[-1], where)
    sw = W if metric is None else W @ metric.to(W.dtype)  # [..., N, d]  rows Σ W_j
    y = 2 * t * sw
    g = -b - t * (sw * W).sum(-1)
    return y, g


def lse_from_atoms(
    y: Tensor, g: Tensor, t: Scalar = 1.0, metric: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Atoms (y, g) → (W, b): W_j = Σ⁻¹y_j/(2t), b_j = −g_j − y_jᵀΣ⁻¹y_j/(4t)."""
    where = "hjplug.math.lse_from_atoms"
    positive("t", t, where)
    atoms_match("y", y, "g", g, where)
    metric_spd(metric, y.shape[-1], where)
    siy = y if metric is None else apply_metric_inverse(y, metric)  # [..., N, d]
    W = siy / (2 * t)
    b = -g - (siy * y).sum(-1) / (4 * t)
    return W, b


