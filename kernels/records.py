"""Result records of the fused HJ kernels (NamedTuples: immutable, unpackable, export-friendly).

Kept free of heavy imports so `import hjplug.kernels` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

__all__ = ["HJAttentionOutput", "HopfColeOutput"]


class HJAttentionOutput(NamedTuple):
    """One HJ attention step with its ε-statistics, per query row i.

    out      [B, H, Sq, Dv]  Σ_j π_ij v_j (input dtype)
    lse      [B, H, Sq]      log Σ_j exp(s_ij), s = scale·q·kᵀ + bias (natural log; HJ value ε·lse)
    entropy  [B, H, Sq]      H(π_i) = lse_i − E_π[s_i] in nats
    topk_weights [B, H, Sq, k] the k largest π_ij, descending (None when topk = 0)
    topk_indices [B, H, Sq, k] their key indices j (int64; −1 where fewer than k keys are visible)
    Rows with no visible key: out = 0, lse = −inf, entropy = 0.
    """

    out: Tensor
    lse: Tensor
    entropy: Tensor
    topk_weights: Tensor | None = None
    topk_indices: Tensor | None = None


class HopfColeOutput(NamedTuple):
    """The LSE layer / Hopf–Cole propagator f_ε(x) = ε·LSE((x Wᵀ + b)/ε) with its statistics.

    value    [M]     ε · log Σ_j exp((W_j·x + b_j)/ε)
    grad     [M, d]  ∇_x f = Σ_j π_j W_j
    entropy  [M]     H(π) in nats
    topk_weights [M, k], topk_indices [M, k] (None when topk = 0)
    """

    value: Tensor
    grad: Tensor
    entropy: Tensor
    topk_weights: Tensor | None = None
    topk_indices: Tensor | None = None
