"""Reference twin of kernels/triton/split_merge.py: merge split-K partial attention results.

Per row, S partial results over disjoint key sets (out_s, lse_s, H_s) combine as
    lse = LSE_s lse_s,  w_s = e^{lse_s − lse},  out = Σ_s w_s·out_s,  H = Σ_s w_s·(H_s − ln w_s)
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
    tot = torch.logsumexp(lse, dim=0)  # [*rows]
    tot_safe = torch.where(torch.isfinite(tot), tot, torch.zeros_like(tot))
    w = torch.exp(lse - tot_safe)  # [S, *rows]; 0 for empty splits
    logw = torch.where(w > 0, lse - tot_safe, torch.zeros_like(w))
    o = (w.unsqueeze(-1) * out).sum(0)  # [*rows, D]
    h = (w * (ent - logw)).sum(0)
    return o.to(dtype), tot, h
