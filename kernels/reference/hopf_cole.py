"""Reference twin of the fused Hopf–Cole (LSE layer) kernel, streaming over atoms N in chunks.

    z_j = (W_j·x + b_j)/ε,   value = ε·log Σ_j e^{z_j},   grad = Σ_j π_j W_j,   H = −Σ_j π_j log π_j

One attention row per x, as the Triton kernel: q = x, k = v = W, scale = 1/ε, bias = b/ε, run
through the attention twin (chunked over atoms, online rescaling in base 2), so the M×N logits
never exist at once and the fused backward recomputes bitwise the forward's scores.
"""

from __future__ import annotations

from torch import Tensor

from hjplug.kernels._checks import check_hopf_cole, stats_dtype
from hjplug.kernels.records import HopfColeOutput
from hjplug.kernels.reference.hj_attention import hj_attention_parts

__all__ = ["hopf_cole", "hopf_cole_parts"]


def hopf_cole(x: Tensor, W: Tensor, b: Tensor, eps: float = 1.0, *, topk: int = 0,
              chunk: int | None = None) -> HopfColeOutput:
    """ε·LSE((x Wᵀ + b)/ε) [M], its gradient Σ π_j W_j [M, d], entropy [M], optional top-k π."""
    return hopf_cole_parts(x, W, b, eps, topk=topk, chunk=chunk)[0]


def hopf_cole_parts(x: Tensor, W: Tensor, b: Tensor, eps: float = 1.0, *, topk: int = 0,
                    chunk: int | None = None) -> tuple[HopfColeOutput, Tensor]:
    """`hopf_cole` and each row's lse_parts [M, 2] = (m, log₂ l) of the logits z, base 2."""
    e = check_hopf_cole(x, W, b, eps, topk, where="hjplug.kernels.reference.hopf_cole")
    M, d = x.shape
    N = W.shape[0]
    ct = stats_dtype(x.dtype)
    q = x.reshape(1, 1, M, d)  # [1, 1, M, d]
    kw = W.reshape(1, 1, N, d)  # [1, 1, N, d]  keys = values = atoms
    bias = (b.to(ct) / e).reshape(1, 1, 1, N)  # the fused backward's bias, bitwise
    r, parts = hj_attention_parts(q, kw, kw, scale=1.0 / e, bias=bias, topk=topk, chunk=chunk)
    tw = None if r.topk_weights is None else r.topk_weights.reshape(M, topk)
    ti = None if r.topk_indices is None else r.topk_indices.reshape(M, topk)
    return (HopfColeOutput(r.lse.reshape(M) * e, r.out.reshape(M, d).to(x.dtype),
                           r.entropy.reshape(M), tw, ti), parts.reshape(M, 2))
