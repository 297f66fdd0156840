"""Tropical-limit bounds: how far LSE_ε is from the max-plus network at ε → 0.

    0 ≤ LSE_ε(z) − max_j z_j ≤ ε·log N
    LSE_ε(z) − max_j z_j ≤ ε·log(1 + (N − 1)·e^{−Δ/ε}),   Δ = gap between the two largest z
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.math._checks import Scalar, positive

__all__ = ["gap_bound", "top2_gap", "uniform_bound"]


def top2_gap(z: Tensor, dim: int = -1) -> Tensor:
    """Δ = z_(1) − z_(2), the gap between the two largest logits (inf when N = 1 or masked)."""
    if z.shape[dim] < 2:
        return torch.full_like(z.select(dim, 0), float("inf"))
    top = torch.topk(z, 2, dim=dim).values
    return top.select(dim, 0) - top.select(dim, 1)


def uniform_bound(z: Tensor, eps: Scalar, dim: int = -1) -> Tensor:
    """ε·log k with k the number of finite (unmasked) atoms."""
    positive("eps", eps, "hjplug.math.uniform_bound")
    k = torch.isfinite(z).sum(dim).to(z.dtype)
    return eps * torch.log(k)


def gap_bound(z: Tensor, eps: Scalar, dim: int = -1) -> Tensor:
    """ε·log(1 + (k − 1)·exp(−Δ/ε)), the gap-aware bound on LSE_ε(z) − max z (k finite atoms)."""
    positive("eps", eps, "hjplug.math.gap_bound")
    k = torch.isfinite(z).sum(dim).to(z.dtype)
    gap = top2_gap(z, dim)
    return eps * torch.log1p((k - 1) * torch.exp(-gap / eps))


