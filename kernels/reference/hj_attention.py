"""Reference twin of the fused HJ attention kernel (pure PyTorch, chunked over keys).

    s_ij = scale · q_i·k_j + bias_ij      (−inf, causal or out-of-window = removed key)
    π_ij = softmax_j(s_ij),  out_i = Σ_j π_ij v_j,
    lse_i = log Σ_j e^{s_ij},  H_i = lse_i − E_π[s_i]

Keys are processed in chunks with flash-style online rescaling, so at most B·H·Sq·chunk scores
exist at once (never Sq×Sk when Sk is large). Causal masking is aligned bottom-right (query i sees
key j ≤ i + Sk − Sq, as SDPA/flash with a KV cache); `window` = w keeps keys with
i + Sk − Sq − w < j (and, when not causal, j < i + Sk − Sq + w). Computes in fp32 (fp64 stays).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.kernels._checks import check_attention, stats_dtype
from hjplug.kernels.records import HJAttentionOutput
from hjplug.kernels.reference import _online

__all__ = ["as_additive", "hj_attention", "visible_mask"]

CHUNK_ELEMENTS = 1 << 24  # scores held at once (fp32: 64 MiB)


def as_additive(bias: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """A bool mask (True = keep) becomes 0 / −inf; a float bias is cast to `dtype`."""
    if bias is None:
        return None
    if bias.dtype == torch.bool:
        zero = torch.zeros((), dtype=dtype, device=bias.device)
        return torch.where(bias, zero, torch.full_like(zero, float("-inf")))
    return bias.to(dtype)


def visible_mask(sq: int, j0: int, j1: int, sk: int, causal: bool, window: int,
                 device: torch.device) -> Tensor | None:
    """[Sq, j1−j0] bool: key j visible from query i (None when every key is)."""
    if not causal and window < 0:
        return None
    i = torch.arange(sq, device=device).unsqueeze(1) + (sk - sq)  # [Sq, 1] absolute position
    j = torch.arange(j0, j1, device=device).unsqueeze(0)  # [1, C]
    ok = torch.ones(sq, j1 - j0, dtype=torch.bool, device=device)
    if causal:
        ok &= j <= i
    if window > 0:
        ok &= j > i - window
        if not causal:
            ok &= j < i + window
    return ok


def hj_attention(
    q: Tensor, k: Tensor, v: Tensor, *, scale: float | None = None, causal: bool = False,
    bias: Tensor | None = None, window: int | None = None, topk: int = 0,
    chunk: int | None = None,
) -> HJAttentionOutput:
    """Attention output with per-row lse and entropy (and top-k weights), chunked over keys."""
    scale_f, win = check_attention(q, k, v, scale, bias, window, topk,
                                   where="hjplug.kernels.reference.hj_attention")
    B, H, Sq, _ = q.shape
    Hk, Sk, Dv = k.shape[1], k.shape[2], v.shape[-1]
    g = H // Hk
    ct = stats_dtype(q.dtype)
    qg = q.to(ct).reshape(B, Hk, g, Sq, q.shape[-1])  # [B, Hk, g, Sq, D]
    kf = k.unsqueeze(2)  # [B, Hk, 1, Sk, D]
    vf = v.unsqueeze(2)  # [B, Hk, 1, Sk, Dv]
    bias_g = None
    if bias is not None:
        bias_g = bias.expand(B, H, Sq, Sk).reshape(B, Hk, g, Sq, Sk)  # view (strides may be 0)
    c = chunk or max(16, CHUNK_ELEMENTS // max(1, B * H * Sq))
    st = _online.start((B, Hk, g, Sq), ct, q.device, Dv)
    kk = min(topk, Sk) if topk else 0
    topv = torch.full((B, Hk, g, Sq, kk), float("-inf"), dtype=ct, device=q.device)
    topi = torch.full((B, Hk, g, Sq, kk), -1, dtype=torch.long, device=q.device)
    for j0 in range(0, Sk, c):
        j1 = min(Sk, j0 + c)
        s = (qg @ kf[..., j0:j1, :].to(ct).transpose(-1, -2)) * scale_f  # [B, Hk, g, Sq, C]
        if bias_g is not None:
            s = s + as_additive(bias_g[..., j0:j1], ct)
        vis = visible_mask(Sq, j0, j1, Sk, causal, win, q.device)
        if vis is not None:
            s = s.masked_fill(~vis, float("-inf"))
        _online.merge_chunk(st, s, vf[..., j0:j1, :].to(ct))
        if kk:
            topv, topi = _online.merge_topk(topv, topi, s, j0)
    out, lse, ent = _online.finish(st)
    assert out is not None
    tw = ti = None
    if topk:
        lse_safe = lse.masked_fill(~torch.isfinite(lse), 0.0)  # rows with no visible key
        tw = torch.exp(topv - lse_safe.unsqueeze(-1))  # [B, Hk, g, Sq, kk]; 0 for removed keys
        ti = torch.where(torch.isfinite(topv), topi, torch.full_like(topi, -1))
        if kk < topk:  # fewer keys than asked: pad with weight 0, index −1
            pad = topk - kk
            tw = torch.cat([tw, tw.new_zeros((*tw.shape[:-1], pad))], dim=-1)
            ti = torch.cat([ti, ti.new_full((*ti.shape[:-1], pad), -1)], dim=-1)
        tw, ti = tw.reshape(B, H, Sq, topk), ti.reshape(B, H, Sq, topk)
    return HJAttentionOutput(
        out.reshape(B, H, Sq, Dv).to(q.dtype),
        lse.reshape(B, H, Sq),
        ent.reshape(B, H, Sq),
        tw,
        ti,
    )
