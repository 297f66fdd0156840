"""Reference twin of the fused Hopf–Cole (LSE layer) kernel, streaming over atoms N in chunks.

    z_j = (W_j·x + b_j)/ε,   value = ε·log Σ_j e^{z_j},   grad = Σ_j π_j W_j,   H = −Σ_j π_j log π_j

The M×N logits never exist at once: at most M·chunk of them (online rescaling in base 2 as in
_online).
"""

from __future__ import annotations

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
    kk = min(topk, N)
    st: _online.OnlineStats | None = None
    for j0 in range(0, N, c):
        j1 = min(N, j0 + c)
        wc = W[j0:j1].to(ct)  # [C, d]
        t = (xf @ wc.T + b[j0:j1].to(ct)) * (_online.LOG2E / e)  # [M, C]  base 2: t = log₂e·z
        st = _online.merge_chunk(st, t, wc, kk, j0)
    if st is None:  # N = 0
        st = _online.empty((M,), ct, x.device, W.shape[1], kk)
    grad, lse, ent = _online.finish(st)
    assert grad is not None
    tw = ti = None
    if topk:
        assert st.topv is not None and st.topi is not None
        tw, ti = _online.topk_result(st.topv, st.topi, lse, topk)  # [M, topk]
    return HopfColeOutput(lse * e, grad.to(x.dtype), ent, tw, ti)
