"""Statistics-only pass for one attention call (CPU): the output comes from the stock SDPA call,
the statistics from one blockwise pass over the scores — no value matmul, no online rescaling.

In base 2 (t = log₂e · z, so that 2^t = e^z), with z_ij = (scaling·q_i·k_j + b_ij)/λ_h,
m_i = max_j t_ij and d = t − m, per block of at most CHUNK scores:

    l_i = Σ_j 2^{d_ij},   lse_i = ln2·m_i + ln l_i,   H_i = ln l_i − ln2·(Σ_j 2^{d_ij} d_ij)/l_i
    top-k: π_(r) = 2^{d_(r)} / l_i

Why base 2 and small blocks (MiniLM, one thread): torch.exp goes through MKL VML, whose
underflow handling is ≈ 3–15× slower on scores of removed keys (arguments below ≈ −87);
torch.exp2 has no such slow path. Blocks of ≤ CHUNK scores keep the scores and their powers in
L2 between the seven steps (matmul, bias, amax, shift, exp2, sum, dot); 4-Mi-score blocks ran
≈ 2.5× slower. Blocks are whole batch elements, then head groups, then query blocks (long
inputs): memory O(CHUNK) for the scores, O(queries) per head for the statistics.
Key padding (a bool mask that is the same for every query, or none): removed keys get the
additive score −10⁹ (2^{d} = 0 exactly, every d finite: no clamp). Other masks (causal, float
bias, per-query masks): removed keys at −∞, d clamped at −10⁴ before the dot (2^{−10⁴} = 0, no
−∞·0) — one more in-place step. Rows with no visible key: lse = −inf, H = 0; NaN scores give
NaN rows (flagged by the recorder).
Tropical (λ_h = 0) or soft-capped heads return None: the caller falls back to the eager path.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["CHUNK", "attention_stats", "blocks"]

CHUNK = 1 << 17  # scores per block (fp32: 512 KiB; block + its powers fit a 2 MiB L2)
_REMOVED = -1.0e9  # additive base-2 score of a padded key: 2^{d} = 0 in fp32 / fp64
_FLOOR = -1.0e4  # d below it contributes 2^{d} = 0 (fp32 / fp64): clamp instead of −∞
_LOG2E = 1.0 / math.log(2.0)
_LN2 = math.log(2.0)

Block = tuple[slice, slice, slice]  # batch, kv-head, query ranges


def attention_stats(call: Any, topk: int = 0) -> dict[str, Tensor] | None:
    """lse, entropy, keys [B, H, Sq] (+ topk_weights / topk_indices [B, H, Sq, k])."""
    from hjplug.instrument._hf import visible_keys

    if call.softcap is not None:
        return None
    lam = call.lam()
    if lam is not None and bool((lam <= 0).any()):
        return None
    k, _, bias, causal = call.prepared()
    q = call.query
    B, H, Sq, D = q.shape
    Hk, Sk = k.shape[1], k.shape[2]
    g = H // Hk
    ct = torch.float64 if q.dtype == torch.float64 else torch.float32
    qs, alpha = q.to(ct).view(B, Hk, g, Sq, D), call.scale * _LOG2E  # a view for fp32 / fp64
    if lam is not None:  # per-head 1/λ_h folded into the query (one copy)
        qs, alpha = qs * (alpha / lam).to(ct).view(1, Hk, g, 1, 1), 1.0
    if causal and bias is None:  # the causal band alone: built per block, never [Sq, Sk]
        rows = torch.arange(Sq, device=q.device) + (Sk - Sq + 1)  # k_i, bottom-right aligned
        keys = rows.clamp(0, Sk).view(1, 1, Sq).expand(B, H, Sq)  # [B, H, Sq] int64
        return _blockwise(qs, k.to(ct), alpha, None, CausalBand(Sq, Sk, q.device), keys,
                          topk)
    vis = visible_keys(call)  # [B|1, H|1, Sq, Sk] bool
    add: Tensor | None = None  # base-2 additive bias, [B|1, Hk|1, g|1, Sq|1, Sk]
    hid: Tensor | CausalBand | None = None  # removed keys, [B|1, Hk|1, g|1, Sq, Sk] bool
    key_vis = vis[..., :1, :]  # [B|1, H|1, 1, Sk]
    if ((bias is None or bias.dtype == torch.bool) and not causal and vis.shape[1] == 1
            and torch.equal(vis, key_vis.expand_as(vis))):  # no mask, or a key-padding mask
        keys = key_vis.sum(-1).expand(B, H, Sq)  # [B, H, Sq] int64
        if not bool(key_vis.all()):
            add = torch.where(key_vis, 0.0, _REMOVED).to(ct).view(-1, 1, 1, 1, Sk)
    else:
        keys = vis.sum(-1).expand(B, H, Sq)
        if bias is not None and bias.dtype != torch.bool:
            fb = torch.where(torch.isfinite(bias), bias.to(ct), torch.zeros((), dtype=ct))
            scale_h = torch.full((H,), _LOG2E, dtype=torch.float64, device=q.device)
            if lam is not None:
                scale_h = scale_h / lam
            add = _grouped(fb * scale_h.to(ct).view(1, H, 1, 1), Hk, g)
        hid = None if bool(vis.all()) else _grouped(~vis, Hk, g)
    return _blockwise(qs, k.to(ct), alpha, add, hid, keys, topk)


def blocks(B: int, Hk: int, g: int, Sq: int, Sk: int, chunk: int) -> list[Block]:
    """Blocks of ≤ chunk scores (at least one query of the g heads sharing a kv-head): whole
    batch elements while one fits, else groups of kv-heads, else query blocks of one kv-head."""
    per_head = g * Sq * Sk
    if Hk * per_head <= chunk:
        return [(b, slice(0, Hk), slice(0, Sq)) for b in _split(B, chunk // (Hk * per_head))]
    if per_head <= chunk:
        return [(slice(b, b + 1), h, slice(0, Sq)) for b in range(B)
                for h in _split(Hk, chunk // per_head)]
    return [(slice(b, b + 1), slice(h, h + 1), i) for b in range(B) for h in range(Hk)
            for i in _split(Sq, chunk // (g * Sk))]


def _split(n: int, most: int) -> list[slice]:
    """[0, n) in ceil(n / most) ranges whose sizes differ by at most one."""
    parts = -(-n // max(1, most))
    base, extra = divmod(n, parts)
    cuts = [i * base + min(i, extra) for i in range(parts + 1)]
    return [slice(cuts[i], cuts[i + 1]) for i in range(parts)]


def _blockwise(qs: Tensor, k: Tensor, alpha: float, add: Tensor | None,
               hid: Tensor | CausalBand | None, keys: Tensor, topk: int) -> dict[str, Tensor]:
    """t = alpha·qs·kᵀ + add, hid keys at −∞ (then d clamped), blockwise → lse, entropy, top-k.

    qs [B, Hk, g, Sq, D], k [B, Hk, Sk, D] (any strides), keys [B, H, Sq]."""
    B, Hk, g, Sq, _ = qs.shape
    Sk = k.shape[2]
    dt, dev = qs.dtype, qs.device
    m = torch.empty(B, Hk, g, Sq, 1, dtype=dt, device=dev)
    l = torch.empty(B, Hk, g, Sq, dtype=dt, device=dev)  # noqa: E741
    a = torch.empty_like(l)
    kk = min(topk, Sk)
    dv = torch.empty(B, Hk, g, Sq, kk, dtype=dt, device=dev)
    di = torch.empty(B, Hk, g, Sq, kk, dtype=torch.long, device=dev)
    parts = blocks(B, Hk, g, Sq, Sk, CHUNK)
    most = max(_size(b, B) * _size(h, Hk) * _size(i, Sq) for b, h, i in parts) * g * Sk
    sbuf = torch.empty(most, dtype=dt, device=dev)
    pbuf = torch.empty(most, dtype=dt, device=dev)
    for bs, hs, iq in parts:
        qb = qs[bs, hs, :, iq]  # [nb, nh, g, c, D]
        nb, nh, _, c, D = qb.shape
        s = sbuf[:nb * nh * g * c * Sk].view(nb * nh, g * c, Sk)
        torch.baddbmm(s, qb.reshape(nb * nh, g * c, D), k[bs, hs].reshape(nb * nh, Sk, D).mT,
                      beta=0.0, alpha=alpha, out=s)  # strided views: no copy of q or k
        s = s.view(nb, nh, g, c, Sk)  # t = log₂e · z
        if add is not None:
            s.add_(_part(add, bs, hs, iq))
        if hid is not None:
            s.masked_fill_(_part(hid, bs, hs, iq), float("-inf"))
        mb = torch.amax(s, -1, keepdim=True, out=m[bs, hs, :, iq])  # [nb, nh, g, c, 1]
        if hid is not None:
            mb.masked_fill_(torch.isinf(mb), 0.0)  # no visible key (or +inf): d = t
        s.sub_(mb)  # d = t − m ≤ 0
        p = torch.exp2(s, out=pbuf[:s.numel()].view(s.shape))
        torch.sum(p, -1, out=l[bs, hs, :, iq])
        if hid is not None:
            s.clamp_min_(_FLOOR)  # −∞ → −10⁴: 2^{d} = 0 there, and 0·d = 0
        if kk:
            torch.topk(s, kk, dim=-1, out=(dv[bs, hs, :, iq], di[bs, hs, :, iq]))
        torch.sum(s.mul_(p), -1, out=a[bs, hs, :, iq])  # Σ_j 2^{d_j} d_j
    return _finish(m.squeeze(-1), l, a, keys, dv, di, topk)


def _finish(m: Tensor, l: Tensor, a: Tensor, keys: Tensor, dv: Tensor, di: Tensor,  # noqa: E741
            topk: int) -> dict[str, Tensor]:
    """[B, Hk, g, Sq] block results → lse, entropy (+ top-k) [B, H, Sq] (nats)."""
    B, H, Sq = keys.shape
    seen = (keys.reshape(l.shape) > 0) | torch.isnan(l)  # rows with a visible key (or NaN)
    l_safe = torch.where(seen, l, torch.ones_like(l))
    logl = l_safe.log()
    lse = torch.where(seen, m * _LN2 + logl, torch.full_like(l, float("-inf")))
    ent = torch.where(seen, logl - _LN2 * a / l_safe, torch.zeros_like(l))
    out = {"lse": lse.reshape(B, H, Sq), "entropy": ent.reshape(B, H, Sq), "keys": keys}
    if topk:
        kk = dv.shape[-1]
        w = torch.exp2(dv - l_safe.log2().unsqueeze(-1)) * seen.unsqueeze(-1)  # π_(r)
        tw = w.new_zeros(*l.shape, topk)
        ti = torch.full_like(tw, -1, dtype=torch.long)
        tw[..., :kk] = w
        ti[..., :kk] = torch.where(w > 0, di, torch.full_like(di, -1))
        out["topk_weights"], out["topk_indices"] = (tw.reshape(B, H, Sq, topk),
                                                    ti.reshape(B, H, Sq, topk))
    return out


def _size(s: slice, n: int) -> int:
    return len(range(*s.indices(n)))


class CausalBand:
    """Keys after the causal band, made per query block: query i (bottom-right aligned) sees
    keys j ≤ i + Sk − Sq. Memory O(block) instead of a stored [Sq, Sk] mask."""

    def __init__(self, Sq: int, Sk: int, device: torch.device) -> None:
        self.Sq, self.Sk, self.device = Sq, Sk, device

    def rows(self, iq: slice) -> Tensor:
        """[1, 1, 1, c, Sk] bool: True where key j is removed for the queries of iq."""
        lo, hi, _ = iq.indices(self.Sq)
        i = torch.arange(lo, hi, device=self.device).unsqueeze(1) + (self.Sk - self.Sq)  # [c, 1]
        j = torch.arange(self.Sk, device=self.device).unsqueeze(0)  # [1, Sk]
        return (j > i).view(1, 1, 1, hi - lo, self.Sk)


def _part(t: Tensor | CausalBand, bs: slice, hs: slice, iq: slice) -> Tensor:
    """Broadcast-aware block of t [B|1, Hk|1, g|1, Sq|1, Sk] (size-1 dims kept whole)."""
    if isinstance(t, CausalBand):
        return t.rows(iq)
    return t[bs if t.shape[0] > 1 else slice(None), hs if t.shape[1] > 1 else slice(None), :,
             iq if t.shape[3] > 1 else slice(None)]


def _grouped(t: Tensor, Hk: int, g: int) -> Tensor:
    """[B|1, H|1, Sq|1, Sk] → broadcastable [B|1, Hk|1, g|1, Sq|1, Sk] (a view)."""
    b0, h0, sq, sk = t.shape
    if h0 == 1:
        return t.view(b0, 1, 1, sq, sk)
    return t.view(b0, Hk, g, sq, sk)
