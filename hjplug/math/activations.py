"""Activations that are exactly LSE layers or Gibbs weights (ε = 1 unless given).

    softplus_ε(z) = LSE_ε(z, 0) = ε·log(1 + e^{z/ε})     → ReLU as ε → 0 (tropical limit)
    sigmoid(z)    = π₁ of the 2-atom LSE {z, 0}
    tanh(z)       = π₊ − π₋ of the 2-atom LSE {z, −z}
GELU and SiLU have no exact LSE reading (open).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.math._checks import Scalar
from hjplug.math.lse import gibbs, lse

__all__ = ["sigmoid_gibbs", "softplus_lse", "tanh_gibbs"]


def softplus_lse(z: Tensor, eps: Scalar = 1.0) -> Tensor:
    """softplus_ε(z) = LSE_ε over the two atoms {z, 0}."""
    return lse(torch.stack([z, torch.zeros_like(z)], dim=-1), eps)


def sigmoid_gibbs(z: Tensor) -> Tensor:
    """σ(z) = Gibbs weight of atom z in {z, 0} at ε = 1."""
    return gibbs(torch.stack([z, torch.zeros_like(z)], dim=-1), 1.0)[..., 0]


def tanh_gibbs(z: Tensor) -> Tensor:
    """tanh(z) = π₊ − π₋ for the signed two-atom Gibbs weights of {z, −z} at ε = 1.

    Evaluated as ±π_max·(1 − π_min/π_max) with π_min/π_max = e^{−2|z|} (the exact logit gap):
    the plain difference of two weights near ½ loses all relative accuracy for |z| ≲ 1e-8.
    """
    pi = gibbs(torch.stack([z, -z], dim=-1), 1.0)
    pos = z >= 0
    neg_abs = torch.where(pos, -z, z)  # −|z|, differentiable at 0 (slope −1 there)
    big = torch.where(pos, pi[..., 0], pi[..., 1])  # π_max ∈ [½, 1]
    sign = torch.where(pos, 1.0, -1.0).to(big.dtype)
    return sign * big * -torch.expm1(2 * neg_abs)
