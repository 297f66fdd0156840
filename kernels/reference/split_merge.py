"""Reference twin of kernels/triton/split_merge.py: merge split-K partial attention results.

Per row, S partial results over disjoint key sets (out_s, lse_parts (m_s, r_s), H_s), with
log₂ Z_s = m_s + r_s in base 2, combine as
    M = max_s m_s,  y_s = (m_s − M) + r_s,  R = log₂ Σ_s 2^{y_s},  w_s = 2^{y_s − R}
    lse = ln2·(M + R),  out = Σ_s w_s·out_s,  H = Σ_s w_s·(H_s − ln w_s)
(the chain rule of entropy: H = Σ_s w_s H_s + H(w)); the merged lse_parts are (M, R). No term
of size |lse| enters the weights, so they sum to 1 however far lse is from 0. Empty splits
(r_s = −inf) get w_s = 0; a row with no visible key at all keeps out = 0, lse = −inf, H = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["merge_splits"]


def merge_splits(out: Tensor, parts: Tensor, ent: Tensor, dtype: torch.dtype
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """out [S, *rows, D], parts [S, *rows, 2], ent [S, *rows] → (out [*rows, D] in `dtype`,
    lse, H [*rows], parts [*rows, 2])."""
    m_s, r_s = parts.unbind(-1)  # [S, *rows]
    m_tot = m_s.amax(dim=0)  # [*rows]; finite (≥ −1e30) unless NaN
    y = (m_s - m_tot) + r_s  # [S, *rows]; −inf for empty splits
    top = y.amax(dim=0)  # [*rows]
    top_safe = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    r_tot = top_safe + torch.exp2(y - top_safe).sum(0).log2()  # −inf: no visible key
    r_tot = torch.where(torch.isnan(top), top, r_tot)
    seen = (r_tot > -math.inf) | torch.isnan(r_tot)  # a NaN split makes the row NaN
    logw = torch.where(seen, y - torch.where(seen, r_tot, torch.zeros_like(r_tot)), -math.inf)
    w = torch.exp2(logw)  # [S, *rows]; 0 for empty splits
    lnw = torch.where(w > 0, logw * math.log(2.0), torch.zeros_like(w))
    wo = w.unsqueeze(-1) * out  # [S, *rows, D]
    o = torch.where(w.unsqueeze(-1) == 0, torch.zeros_like(wo), wo).sum(0)  # [*rows, D]
    h = (w * (ent - lnw)).sum(0)
    lse = (m_tot + r_tot) * math.log(2.0)
    return o.to(dtype), lse, h, torch.stack([m_tot, r_tot], dim=-1)
