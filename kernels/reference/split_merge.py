"""Reference twin of kernels/triton/split_merge.py: merge split-K partial attention results.

Per row, S partial results over disjoint key sets (out_s, lse_s, H_s) combine as
    lse = LSE_s lse_s = m + log z,  w_s = e^{lse_s − lse} (computed as e^{lse_s − m − log z}),
    out = Σ_s w_s·out_s,  H = Σ_s w_s·(H_s − ln w_s)
(the chain rule of entropy: H = Σ_s w_s H_s + H(w)). Empty splits (lse_s = −inf) get w_s = 0;
a row with no visible key at all keeps out = 0, lse = −inf, H = 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["merge_splits"]


def merge_splits(out: Tensor, lse: Tensor, ent: Tensor, dtype: torch.dtype
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """out [S, *rows, D], lse / ent [S, *rows] → (out [*rows, D] in `dtype`, lse, H [*rows])."""
    m = lse.amax(dim=0)  # [*rows]; NaN stays NaN
    m_safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    d = lse - m_safe  # [S, *rows]  exact for splits near the max (no |lse|-sized rounding)
    z = torch.exp(d).sum(0)  # [*rows]; 0 for a row with no visible key
    logz = torch.where(z > 0, z, torch.ones_like(z)).log()
    tot = torch.where(z > 0, m_safe + logz, torch.full_like(z, float("-inf")))
    tot = torch.where(torch.isnan(z), z, tot)
    # w_s = e^{lse_s − m − log z}: relative to the max, not to the rounded total (at |lse| ≫
    # log z, e^{lse_s − lse} loses log z and the weights stop summing to 1)
    logw = d - torch.where(torch.isnan(z), z, logz)
    w = torch.exp(logw)  # [S, *rows]; 0 for empty splits
    logw = torch.where(w > 0, logw, torch.zeros_like(w))
    o = (w.unsqueeze(-1) * out).sum(0)  # [*rows, D]
    h = (w * (ent - logw)).sum(0)
    return o.to(dtype), tot, h
