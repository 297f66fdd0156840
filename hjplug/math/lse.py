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


def _shifted(z: Tensor, eps: Scalar, dim: int) -> tuple[Tensor, Tensor, Scalar]:
    """(m, u, e) with u = (z − m)/ε and m = max_j z_j (keepdim): LSE_ε(z) = m + ε·LSE(u).

    Shifting *before* dividing keeps z/ε from overflowing when ε ≪ |z| (ε = 1e-30, or fp16 with
    ε = 1e-5): u ≤ 0 always, so ε → 0 is the tropical limit, never inf or NaN. m is a constant
    for autograd (the identity holds for any m), so every derivative is the plain formula's,
    ties included. The 0/0 of a maximal atom where ε underflows in z's dtype and the ∞ − ∞ of
    a +inf logit are set to u = 0 (all the weight on the maximal atoms); a row of removed atoms
    (all −inf) keeps u = −inf (empty, not uniform); a NaN stays NaN.
    """
    e = _as_scale(eps, z, dim)
    if z.shape[dim] == 0:  # no atoms: LSE = −inf, nothing to shift
        return torch.zeros_like(z.sum(dim, keepdim=True)), z / e, e
    m = z.detach().amax(dim=dim, keepdim=True)
    shift = torch.where(m == float("-inf"), torch.zeros_like(m), m)
    removed = z == float("-inf")
    # removed atoms: u = −inf, set after the division so that no (−inf)/ε enters autograd
    # (its backward 0·∞ would make ∂/∂ε NaN)
    u = (torch.where(removed, shift, z) - shift) / e
    u = torch.where(torch.isnan(u) & (z == m), torch.zeros_like(u), u)
    u = torch.where(removed, torch.full_like(u, float("-inf")), u)
    return shift, u, e


def lse(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """LSE_ε(z) = ε·log Σ_j exp(z_j/ε) along `dim` (max-shifted; −inf entries = removed atoms)."""
    positive("eps", eps, "hjplug.math.lse")
    m, u, e = _shifted(z, eps, dim)
    out = m + e * torch.logsumexp(u, dim=dim, keepdim=True)  # [..., 1, ...]
    return out.squeeze(dim)


def lse_tropical(z: Tensor, dim: int = -1) -> Tensor:
    """The ε → 0 limit LSE_0(z) = max_j z_j (max-plus / tropical network)."""
    return z.amax(dim=dim)


def log_gibbs(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """log π = z/ε − LSE(z/ε), computed without forming π (−inf for removed atoms)."""
    positive("eps", eps, "hjplug.math.log_gibbs")
    return torch.log_softmax(_shifted(z, eps, dim)[1], dim=dim)


def gibbs(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """Attribution weights π = softmax(z/ε) = ∂LSE_ε(z)/∂z (a row with every atom removed:
    π = 0, as the kernels — it has no Gibbs measure, never a uniform or NaN one)."""
    positive("eps", eps, "hjplug.math.gibbs")
    p = torch.softmax(_shifted(z, eps, dim)[1], dim=dim)
    empty = (z == float("-inf")).all(dim=dim, keepdim=True)
    return p.masked_fill(empty, 0.0)


def entropy(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """H(π) = −Σ π_j log π_j for π = softmax(z/ε), from logits in log space.

    Exactly +0 for a one-hot limit, and no NaN for −inf (masked) logits: 0·log 0 := 0. A row
    with no unmasked atom has H = 0 (as the kernels); a NaN logit gives NaN, never H = 0.
    """
    logp = log_gibbs(z, eps, dim)  # [..., N, ...]
    gone = logp == float("-inf")
    safe = torch.where(gone, torch.zeros_like(logp), logp)  # no 0·(−inf) in the backward
    terms = torch.where(gone, torch.zeros_like(logp), safe.exp() * safe)
    h = 0.0 - terms.sum(dim=dim)  # 0.0 − 0.0 = +0.0 for a one-hot row (−x would give −0.0)
    empty = (z == float("-inf")).all(dim=dim)  # nothing visible (also N = 0)
    return torch.where(empty, torch.zeros_like(h), h)


def normalized_entropy(z: Tensor, eps: Scalar = 1.0, dim: int = -1) -> Tensor:
    """H(π)/log k with k the number of unmasked (finite) atoms; NaN where k ≤ 1 (undefined)."""
    k = torch.isfinite(z).sum(dim=dim).to(z.dtype)
    h = entropy(z, eps, dim)
    return torch.where(k > 1, h / k.clamp_min(2).log(), torch.full_like(h, float("nan")))
