"""Log-sum-exp, Gibbs weights and attribution entropy at deformation (viscosity) ε.

    LSE_ε(z) = ε · log Σ_j exp(z_j / ε)            (max-shifted)
    π_j      = softmax(z / ε)_j = ∂LSE_ε/∂z_j      (Gibbs / attribution weights)
    H(π)     = −Σ_j π_j log π_j ∈ [0, log N]        (log π taken in log space)
    LSE_ε(z) = ⟨π, z⟩ + ε·H(π)                       (Gibbs variational identity)
    LSE_0(z) = max_j z_j                            (tropical / max-plus limit)

Masked atoms carry z_j = −inf: they are removed (π_j = 0), never given uniform weight.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.math._checks import Scalar, positive

__all__ = ["entropy", "gibbs", "log_gibbs", "lse", "lse_tropical", "normalized_entropy"]


def _as_scale(eps: Scalar, z: Tensor, dim: int) -> Scalar:
    """ε broadcast against z along `dim` (ε may hold one value per leading index, e.g. per head)."""
    if isinstance(eps, Tensor) and eps.dim() > 0:
        return eps.to(z.dtype).unsqueeze(dim)
    return eps


def lse(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """LSE_ε(z) = ε·log Σ_j exp(z_j/ε) along `dim` (max-shifted; −inf entries = removed atoms)."""
    positive("eps", eps, "hjplug.math.lse")
    e = _as_scale(eps, z, dim)
    out = torch.logsumexp(z / e, dim=dim, keepdim=True) * e  # [..., 1, ...]
    return out.squeeze(dim)


def lse_tropical(z: Tensor, dim: int = -1) -> Tensor:
    """The ε → 0 limit LSE_0(z) = max_j z_j (max-plus / tropical network)."""
    return z.amax(dim=dim)


def log_gibbs(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """log π = z/ε − LSE(z/ε), computed without forming π (−inf for removed atoms)."""
    positive("eps", eps, "hjplug.math.log_gibbs")
    return torch.log_softmax(z / _as_scale(eps, z, dim), dim=dim)


def gibbs(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """Attribution weights π = softmax(z/ε) = ∂LSE_ε(z)/∂z."""
    positive("eps", eps, "hjplug.math.gibbs")
    return torch.softmax(z / _as_scale(eps, z, dim), dim=dim)


def entropy(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """H(π) = −Σ π_j log π_j for π = softmax(z/ε), from logits in log space.

    Exactly 0 for a one-hot limit, and no NaN for −inf (masked) logits: 0·log 0 := 0.
    """
    logp = log_gibbs(z, eps, dim)  # [..., N, ...]
    p = logp.exp()
    terms = torch.where(p > 0, p * logp, torch.zeros_like(p))
    return -terms.sum(dim=dim)


def normalized_entropy(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """H(π)/log k with k the number of unmasked (finite) atoms; NaN where k ≤ 1 (undefined)."""
    k = torch.isfinite(z).sum(dim=dim).to(z.dtype)
    h = entropy(z, eps, dim)
    return torch.where(k > 1, h / k.clamp_min(2).log(), torch.full_like(h, float("nan")))
