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
    """tanh(z) = π₊ − π₋ for the signed two-atom Gibbs weights of {z, −z} at ε = 1."""
    pi = gibbs(torch.stack([z, -z], dim=-1), 1.0)
    return pi[..., 0] - pi[..., 1]
