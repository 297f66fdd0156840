"""Reference twin of the fused Hopf–Cole (LSE layer) kernel, streaming over atoms N in chunks.

    z_j = (W_j·x + b_j)/ε,   value = ε·log Σ_j e^{z_j},   grad = Σ_j π_j W_j,   H = −Σ_j π_j log π_j

The M×N logits never exist at once: at most M·chunk of them (online rescaling as in _online).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.kernels._checks import check_hopf_cole, stats_dtype
from hjplug.kernels.records import HopfColeOutput
from hjplug.kernels.reference import _online

__all__ = ["hopf_cole"]

CHUNK_ELEMENTS = 1 << 24


def hopf_cole(x: Tensor, W: Tensor, b: Tensor, eps: float = 1.0, *, topk: int = 0,
              chunk: int | None = None) -> HopfColeOutput:
    """ε·LSE((x Wᵀ + b)/ε) [M], its gradient Σ π_j W_j [M, d], entropy [M], optional top-k π."""
    e = check_hopf_cole(x, W, b, eps, topk, where="hjplug.kernels.reference.hopf_cole")
    M, N = x.shape[0], W.shape[0]
    ct = stats_dtype(x.dtype)
    xf = x.to(ct)  # [M, d]
    c = chunk or max(16, CHUNK_ELEMENTS // max(1, M))
    st = _online.start((M,), ct, x.device, W.shape[1])
    kk = min(topk, N)
    topv = torch.full((M, kk), float("-inf"), dtype=ct, device=x.device)
    topi = torch.full((M, kk), -1, dtype=torch.long, device=x.device)
    for j0 in range(0, N, c):
        j1 = min(N, j0 + c)
        wc = W[j0:j1].to(ct)  # [C, d]
        z = (xf @ wc.T + b[j0:j1].to(ct)) / e  # [M, C]
        _online.merge_chunk(st, z, wc)
        if kk:
            topv, topi = _online.merge_topk(topv, topi, z, j0)
    grad, lse, ent = _online.finish(st)
    assert grad is not None
    tw = ti = None
    if topk:
        tw = torch.exp(topv - lse.masked_fill(~torch.isfinite(lse), 0.0).unsqueeze(-1))
        ti = torch.where(torch.isfinite(topv), topi, torch.full_like(topi, -1))
        if kk < topk:
            tw = torch.cat([tw, tw.new_zeros(M, topk - kk)], dim=-1)
            ti = torch.cat([ti, ti.new_full((M, topk - kk), -1)], dim=-1)
    return HopfColeOutput(lse * e, grad.to(x.dtype), ent, tw, ti)
