"""Online (flash-style) log-partition, entropy, output and top-k over chunks of keys, in PyTorch.

Scores are in base 2, t = log₂e·s (so 2^t = e^s), as in the Triton kernels. State per row,
relative to the running max m (m starts at −10³⁰, finite, so no inf − inf ever appears):
    l = Σ_j 2^{t_j − m}          a = Σ_j 2^{t_j − m}·(t_j − m)          acc = Σ_j 2^{t_j − m} v_j
    lse = ln2·(m + log₂ l)       H = ln2·(log₂ l − a/l)   (= lse − E_π[s])      out = acc/l
The pair (m, log₂ l) — `lse_parts` — is kept beside the rounded lse: a backward or a top-k
weight rebuilds π_j = 2^{(t_j − m) − log₂ l} with t_j − m exact at the row's largest scores,
so log l survives however large |lse| is (fp32 lse = m + log₂ l rounds log l away once
|lse| ≫ log Sk: at |lse| = 1e9, ulp(lse) = 64).
A new chunk with max m' ≥ m rescales by α = 2^{m − m'}:  l ← α·l,  a ← α·(a + l·(m − m')).
Removed keys carry t = −inf: 2^{−inf} = 0, and d = t − m is clamped at −10⁴ before p·d
(2^{−10⁴} = 0 in fp32 and fp64, so the clamp changes no product and no 0·(−inf) appears).
CPU notes: exp2 has no slow underflow path (MKL's exp is 3–15× slower below ≈ −87); the chunk
ops run in place when autograd does not need their inputs; m is not differentiated (every
result is independent of it), so in-place shifts never invalidate a saved tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from hjplug.kernels.reference.topk import pad_topk

__all__ = ["LN2", "LOG2E", "OnlineStats", "empty", "finish", "lse_parts", "merge_chunk",
           "topk_result", "unpack_parts"]

LOG2E = 1.0 / math.log(2.0)
LN2 = math.log(2.0)
_M0 = -1.0e30  # initial running max (finite: α = 2^{m − m'} and l·(m − m') stay finite)
_FLOOR = -1.0e4  # below it 2^d = 0 exactly (fp32 and fp64)


@dataclass
class OnlineStats:
    m: Tensor  # [..., 1]   running max of t (≥ −10³⁰; NaN once a NaN score is seen)
    l: Tensor  # noqa: E741  [...]  Σ 2^{t − m}
    a: Tensor  # [...]      Σ 2^{t − m}(t − m)
    acc: Tensor | None  # [..., Dv]  Σ 2^{t − m} v   (None when no values are averaged)
    topv: Tensor | None = None  # [..., k]  largest t so far (−inf: removed key)
    topi: Tensor | None = None  # [..., k]  their key indices


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, dv: int | None,
          topk: int = 0) -> OnlineStats:
    """State of rows that have seen no key yet (finish → out 0, lse −inf, H 0)."""
    z = torch.zeros(shape, dtype=dtype, device=device)
    acc = None if dv is None else torch.zeros((*shape, dv), dtype=dtype, device=device)
    topv = torch.full((*shape, topk), float("-inf"), dtype=dtype, device=device)  # [..., k]
    topi = torch.full((*shape, topk), -1, dtype=torch.long, device=device)
    return OnlineStats(torch.full((*shape, 1), _M0, dtype=dtype, device=device), z, z.clone(),
                       acc, topv, topi)


def merge_chunk(st: OnlineStats | None, t: Tensor, v: Tensor | None = None, topk: int = 0,
                j0: int = 0, p_out: Tensor | None = None) -> OnlineStats:
    """Fold base-2 scores t [..., C] (values v [..., C, Dv], keys j0…) into st (None: nothing
    seen yet); return the new state. t is overwritten (it becomes d = t − m); p_out (like t, not
    under autograd) receives 2^d, so a caller can reuse one buffer for every chunk."""
    tv = ti = None
    if topk:  # raw t (−inf for removed keys), as the kernel keeps it
        tv, ti = t.topk(min(topk, t.shape[-1]), dim=-1)  # [..., k']
        ti = ti + j0
        if st is not None and st.topv is not None:
            tv, pos = torch.cat([st.topv, tv], -1).topk(min(topk, st.topv.shape[-1] +
                                                            tv.shape[-1]), dim=-1)
            ti = torch.cat([st.topi, ti], -1).gather(-1, pos)  # type: ignore[list-item]
    m_c = t.detach().amax(dim=-1, keepdim=True)  # [..., 1]; NaN stays NaN
    m = m_c.clamp_min_(_M0) if st is None else torch.maximum(st.m, m_c)
    d = t.sub_(m)  # [..., C]  d = t − m ≤ 0
    p = torch.exp2(d, out=p_out)  # [..., C]
    l_c = p.sum(-1)  # [...]
    if d.requires_grad:  # autograd keeps p and d: no in-place steps
        a_c = torch.linalg.vecdot(p, d.clamp_min(_FLOOR))  # [...]  Σ_j p_j·max(d_j, −10⁴)
    else:
        a_c = d.clamp_min_(_FLOOR).mul_(p).sum(-1)  # [...]  (d is not needed afterwards)
    acc_c = None if v is None else p.to(v.dtype) @ v  # [..., Dv]
    if st is None:
        return OnlineStats(m, l_c, a_c, acc_c, tv, ti)
    shift = st.m - m  # [..., 1]  ≤ 0, finite
    alpha = torch.exp2(shift)  # [..., 1]
    a = alpha.squeeze(-1) * (st.a + st.l * shift.squeeze(-1)) + a_c
    l = alpha.squeeze(-1) * st.l + l_c  # noqa: E741
    acc = None if st.acc is None or acc_c is None else st.acc * alpha + acc_c
    return OnlineStats(m, l, a, acc, tv, ti)


def finish(st: OnlineStats) -> tuple[Tensor | None, Tensor, Tensor]:
    """(out = acc/l, lse, entropy) in nats; rows with nothing visible → 0, −inf, 0; NaN rows
    stay NaN (a NaN score must not pass for an empty row)."""
    seen = (st.l > 0) | torch.isnan(st.l)
    l_safe = torch.where(seen, st.l, torch.ones_like(st.l))
    log2l = l_safe.log2()
    lse = torch.where(seen, (st.m.squeeze(-1) + log2l) * LN2, torch.full_like(st.l, -math.inf))
    ent = torch.where(seen, (log2l - st.a / l_safe) * LN2, torch.zeros_like(st.l))
    out = None if st.acc is None else st.acc / l_safe.unsqueeze(-1)
    return out, lse, ent


def lse_parts(st: OnlineStats) -> Tensor:
    """[..., 2] = (m, log₂ l) of each row, base 2: log₂ Z = m + log₂ l (log₂ l = −inf for a row
    with no visible key, NaN for a NaN row)."""
    return torch.stack([st.m.squeeze(-1), st.l.log2()], dim=-1)


def unpack_parts(parts: Tensor) -> tuple[Tensor, Tensor]:
    """(m, r) [...] of lse_parts [..., 2], with r = log₂ l, and r = +inf for rows with no
    visible key so that π = 2^{(t − m) − r} is 0 there without a mask (never 2^{+inf})."""
    m, r = parts.unbind(-1)
    return m, r.masked_fill(r == -math.inf, math.inf)


def topk_result(topv: Tensor, topi: Tensor, parts: Tensor, topk: int) -> tuple[Tensor, Tensor]:
    """Top-k π = 2^{(t − m) − log₂ l} [..., topk] from the raw base-2 scores topv and the rows'
    lse_parts, and key indices; removed keys and padding (fewer keys than topk): weight 0,
    index −1."""
    m, r = unpack_parts(parts)
    tw = torch.exp2((topv - m.unsqueeze(-1)) - r.unsqueeze(-1))  # [..., k]; 0 at t = −inf
    ti = torch.where(torch.isfinite(topv), topi, torch.full_like(topi, -1))
    return pad_topk(tw, ti, topk)
