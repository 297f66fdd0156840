"""Reference twin of the fused ε-sweep: entropies of the same logits at K values of ε at once.

    H_k = H(softmax(z/ε_k)) = log l_k − a_k/l_k,  l_k = Σ_j e^{(z_j−m)/ε_k},
    a_k = Σ_j e^{(z_j−m)/ε_k}·(z_j−m)/ε_k           (m = max_j z_j is shared by every ε_k > 0)

Either `logits` [..., N] (−inf = removed atom) or `q` [B, H, Sq, D] with `k` [B, Hk, Sk, D]
(z = q·kᵀ, unscaled: ε = √D gives standard attention; causal aligned bottom-right).
Result [..., K] (float32 at least), chunked over the N / Sk axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hjplug.errors import InvalidArgumentError
from hjplug.kernels._checks import check_eps_values, stats_dtype
from hjplug.kernels.reference import _online
from hjplug.kernels.reference.hj_attention import visible_mask

__all__ = ["check_sweep", "entropy_sweep"]

CHUNK_ELEMENTS = 1 << 24


def check_sweep(logits: Tensor | None, q: Tensor | None, k: Tensor | None,
                where: str = "hjplug.kernels.entropy_sweep") -> None:
    if (q is None) != (k is None):
        raise InvalidArgumentError("q, k", "both q and k (the q·kᵀ form), or neither",
                                   "only q" if k is None else "only k", where=where)
    if (logits is None) == (q is None):
        raise InvalidArgumentError("logits / q, k", "either logits, or both q and k",
                                   "both" if logits is not None else "neither", where=where)
    if logits is not None and (not isinstance(logits, Tensor) or logits.dim() < 1
                               or not logits.is_floating_point()):
        raise InvalidArgumentError("logits", "a floating-point tensor [..., N]", logits,
                                   where=where)
    if q is not None and k is not None:
        if not (isinstance(q, Tensor) and isinstance(k, Tensor)) or q.dim() != 4 or \
                k.dim() != 4 or k.shape[0] != q.shape[0] or k.shape[-1] != q.shape[-1] or \
                k.shape[1] == 0 or q.shape[1] % k.shape[1] != 0:
            raise InvalidArgumentError("q, k", "[B, H, Sq, D] and [B, Hk, Sk, D] with Hk ≥ 1 "
                                       "dividing H", f"{getattr(q, 'shape', q)} and "
                                       f"{getattr(k, 'shape', k)}", where=where)
        if not q.is_floating_point() or q.dtype != k.dtype or q.device != k.device:
            raise InvalidArgumentError("q, k", "floating-point tensors of one dtype on one "
                                       "device", f"{q.dtype} on {q.device} and {k.dtype} on "
                                       f"{k.device}", where=where)


def entropy_sweep(logits: Tensor | None = None, eps: Tensor | Sequence[float] = (1.0,), *,
                  q: Tensor | None = None, k: Tensor | None = None, causal: bool = False,
                  chunk: int | None = None) -> Tensor:
    """H(softmax(z/ε_k)) for every ε_k: [..., K] (logits) or [B, H, Sq, K] (q/k)."""
    check_sweep(logits, q, k, where="hjplug.kernels.reference.entropy_sweep")
    ev = check_eps_values(eps, where="hjplug.kernels.reference.entropy_sweep")
    src = logits if logits is not None else q
    assert src is not None
    ct = stats_dtype(src.dtype)
    inv = _online.LOG2E / torch.tensor(ev, dtype=torch.float64).to(device=src.device, dtype=ct)
    # inv [K] = log₂e/ε_k: base-2 scores t = log₂e·z/ε_k
    K = inv.numel()
    if logits is not None:
        lead, N = logits.shape[:-1], logits.shape[-1]
        c = chunk or max(16, CHUNK_ELEMENTS // max(1, logits.numel() // max(N, 1) * K))
        st: _online.OnlineStats | None = None
        for j0 in range(0, N, c):
            z = logits[..., j0:j0 + c].to(ct).unsqueeze(-2) * inv.unsqueeze(-1)  # [..., K, C]
            st = _online.merge_chunk(st, z)
        if st is None:  # N = 0
            st = _online.empty((*lead, K), ct, src.device, None)
        return _online.finish(st)[2]
    assert q is not None and k is not None
    B, H, Sq, D = q.shape
    Hk, Sk = k.shape[1], k.shape[2]
    g = H // Hk
    qg = q.to(ct).reshape(B, Hk, g, Sq, D)  # [B, Hk, g, Sq, D]
    c = chunk or max(16, CHUNK_ELEMENTS // max(1, B * H * Sq * K))
    st = None
    for j0 in range(0, Sk, c):
        j1 = min(Sk, j0 + c)
        z = qg @ k[:, :, None, j0:j1].to(ct).transpose(-1, -2)  # [B, Hk, g, Sq, C]
        vis = visible_mask(Sq, j0, j1, Sk, causal, -1, q.device)
        if vis is not None:
            z = z.masked_fill(~vis, float("-inf"))
        st = _online.merge_chunk(st, z.unsqueeze(-2) * inv.view(K, 1))  # [B, Hk, g, Sq, K, C]
    if st is None:  # Sk = 0
        st = _online.empty((B, Hk, g, Sq, K), ct, q.device, None)
    return _online.finish(st)[2].reshape(B, H, Sq, K)
