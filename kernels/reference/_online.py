"""Online (flash-style) log-partition, entropy and top-k over chunks of keys, in PyTorch.

State per row, relative to the running max m (scores s in natural-log units):
    l = Σ_j exp(s_j − m)              a = Σ_j exp(s_j − m)·(s_j − m)
    lse = m + log l                   H = log l − a/l          (= lse − E_π[s])
A new chunk with max m' ≥ m rescales by α = exp(m − m'):  l ← α·l,  a ← α·(a + l·(m − m')).
Removed keys carry s = −inf and contribute nothing (guarded so 0·(−inf) never appears).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["OnlineStats", "finish", "merge_chunk", "merge_topk", "start"]

_FLOOR = -1.0e4  # below it exp(d) = 0 exactly (fp32 and fp64)


@dataclass
class OnlineStats:
    m: Tensor  # [...]      running max (−inf while nothing is visible)
    l: Tensor  # noqa: E741  [...]      Σ exp(s − m)
    a: Tensor  # [...]      Σ exp(s − m)(s − m)
    acc: Tensor | None  # [..., Dv] Σ exp(s − m) v   (None when no values are averaged)


def start(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
          dv: int | None) -> OnlineStats:
    m = torch.full(shape, float("-inf"), dtype=dtype, device=device)
    z = torch.zeros(shape, dtype=dtype, device=device)
    acc = None if dv is None else torch.zeros((*shape, dv), dtype=dtype, device=device)
    return OnlineStats(m, z, z.clone(), acc)


def merge_chunk(st: OnlineStats, s: Tensor, v: Tensor | None = None) -> Tensor:
    """Fold scores s [..., C] (and values v [..., C, Dv] broadcastable) into st; return p.

    Only O(rows) tensors are tested for finiteness; the [..., C] chunk sees 5 passes (amax, sub,
    exp, clamp, sum) and one batched dot. Removed keys (d = −inf) give p = 0 and contribute
    p·max(d, −10⁴) = 0: exp(−10⁴) underflows to 0 in fp32 and fp64, so the clamp changes no
    product, keeps NaN (clamp propagates it) and leaves no 0·(−inf) in the autograd graph.
    """
    m_new = torch.maximum(st.m, s.amax(dim=-1))  # [...]
    m_safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
    alpha = torch.exp(st.m - m_safe)  # 0 where st.m = −inf
    # masked_fill before multiplying, so no 0·(−inf) exists even in the autograd graph
    shift = st.l * (st.m - m_safe).masked_fill(~torch.isfinite(st.m), 0.0)
    d = s - m_safe.unsqueeze(-1)  # [..., C]
    p = torch.exp(d)  # [..., C]
    dc = d.clamp_min(_FLOOR) if d.requires_grad else d.clamp_min_(_FLOOR)  # p's graph keeps no d
    pd = (p.unsqueeze(-2) @ dc.unsqueeze(-1)).reshape(p.shape[:-1])  # Σ_j p_j d_j as a dot
    st.a = alpha * (st.a + shift) + pd
    st.l = alpha * st.l + p.sum(-1)
    if st.acc is not None and v is not None:
        st.acc = st.acc * alpha.unsqueeze(-1) + p.to(v.dtype) @ v
    st.m = m_new
    return p


def merge_topk(topv: Tensor, topi: Tensor, s: Tensor, j0: int) -> tuple[Tensor, Tensor]:
    """Keep the k largest scores (and key indices) of [topv | s]; k = topv.shape[-1]."""
    k = topv.shape[-1]
    idx = torch.arange(j0, j0 + s.shape[-1], device=s.device).expand(s.shape)  # [..., C]
    vals = torch.cat([topv, s], dim=-1)
    inds = torch.cat([topi, idx], dim=-1)
    v2, pos = vals.topk(k, dim=-1)
    return v2, inds.gather(-1, pos)


def finish(st: OnlineStats) -> tuple[Tensor | None, Tensor, Tensor]:
    """(out = acc/l, lse, entropy); rows with nothing visible → 0, −inf, 0; NaN rows stay NaN."""
    seen = (st.l > 0) | torch.isnan(st.l)  # a NaN score must not pass for an empty row
    l_safe = torch.where(seen, st.l, torch.ones_like(st.l))
    m_safe = torch.where(torch.isfinite(st.m), st.m, torch.zeros_like(st.m))
    lse = torch.where(seen, m_safe + l_safe.log(), torch.full_like(st.l, float("-inf")))
    ent = torch.where(seen, l_safe.log() - st.a / l_safe, torch.zeros_like(st.l))
    out = None if st.acc is None else st.acc / l_safe.unsqueeze(-1)
    return out, lse, ent
