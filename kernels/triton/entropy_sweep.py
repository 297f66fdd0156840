"""Fused ε-sweep in Triton: the entropies of the same logits at K temperatures in one pass.

The running max m of z is shared by every ε_k > 0 (max_j z_j/ε_k = m/ε_k), so one pass over the
atoms/keys keeps, per row, m and K pairs (l_k, a_k) in log2 units (c_k = log2(e)/ε_k):
    d_jk = (z_j − m)·c_k,  l_k ← α_k·l_k + Σ_j 2^{d_jk},
    a_k ← α_k·(a_k + l_k·δ_k) + Σ_j 2^{d_jk}·d_jk
    α_k = 2^{δ_k}, δ_k = (m_old − m)·c_k;     H_k = ln2·(log2 l_k − a_k/l_k)
Logits are read once instead of K times; the cost is K exp2 per score (MUFU-bound for large K).
`q`/`k` form: z = q·kᵀ per tile (never stored), causal aligned bottom-right.
Forward only (an entropy sweep is a diagnostic; the reference twin is differentiable).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from hjplug.kernels.triton._config import cdiv, interpreting, next_pow2
from hjplug.kernels.triton.hj_attention import new_output

__all__ = ["entropy_sweep_fwd"]

LOG2E = 1.4426950408889634


@triton.jit
def _sweep_update(z, m, lsum, a, c):
    """Fold a [BR, BN] tile of logits z (−inf = removed) into (m [BR], lsum, a [BR, KP])."""
    m_new = tl.maximum(m, tl.max(z, 1))  # [BR]
    d = (z - m_new[:, None])[:, :, None] * c[None, None, :]  # [BR, BN, KP]
    # removed atoms: 2^d = 0, 0·d = 0; NaN stays NaN (one max.NaN instruction)
    d = tl.maximum(d, -1.0e4, propagate_nan=tl.PropagateNan.ALL)
    p = tl.math.exp2(d)
    dm = (m - m_new)[:, None] * c[None, :]  # [BR, KP]
    dm = tl.maximum(dm, -1.0e4, propagate_nan=tl.PropagateNan.ALL)
    alpha = tl.math.exp2(dm)
    a = alpha * (a + lsum * dm) + tl.sum(p * d, 1)
    lsum = alpha * lsum + tl.sum(p, 1)
    return m_new, lsum, a


@triton.jit
def _sweep_store(ENT, rows, R, K, lsum, a, KP: tl.constexpr):
    kk = tl.arange(0, KP)
    seen = (lsum > 0) | (lsum != lsum)  # a NaN score makes the row NaN, not empty
    l_safe = tl.where(seen, lsum, 1.0)
    h = tl.where(seen, (tl.math.log2(l_safe) - a / l_safe) * 0.6931471805599453, 0.0)
    tl.store(ENT + rows[:, None] * K + kk[None, :], h,
             mask=(rows[:, None] < R) & (kk[None, :] < K))


@triton.jit
def _sweep_logits(Z, C, ENT, R, N, K, szr, szn,
                  BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, KP: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    c = tl.load(C + tl.arange(0, KP), mask=tl.arange(0, KP) < K, other=1.0)  # [KP]
    m = tl.full([BLOCK_R], -1.0e30, dtype=tl.float32)
    lsum = tl.zeros([BLOCK_R, KP], dtype=tl.float32)
    a = tl.zeros([BLOCK_R, KP], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        z = tl.load(Z + rows.to(tl.int64)[:, None] * szr + cols[None, :] * szn,  # R·N ≥ 2³¹ ok
                    mask=(rows[:, None] < R) & (cols[None, :] < N), other=float("-inf"))
        m, lsum, a = _sweep_update(z.to(tl.float32), m, lsum, a, c)
    _sweep_store(ENT, rows, R, K, lsum, a, KP)


@triton.jit
def _sweep_logits_kouter(Z, C, ENT, R, N, K, szr, szn,
                         BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr):
    """Two-level variant: pass 1 finds the row max m; then for each ε_k one more pass over the
    (cache-resident) rows with m fixed, so no rescaling and 2-D tiles with row sums only."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    base = Z + rows.to(tl.int64)[:, None] * szr  # 64-bit: R·N may exceed 2³¹
    m = tl.full([BLOCK_R], -1.0e30, dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        z = tl.load(base + cols[None, :] * szn, mask=(rows[:, None] < R) & (cols[None, :] < N),
                    other=float("-inf"))
        m = tl.maximum(m, tl.max(z.to(tl.float32), 1))
    for k in range(0, K):
        c = tl.load(C + k)
        lsum = tl.zeros([BLOCK_R], dtype=tl.float32)
        a = tl.zeros([BLOCK_R], dtype=tl.float32)
        for n0 in range(0, N, BLOCK_N):
            cols = n0 + tl.arange(0, BLOCK_N)
            z = tl.load(base + cols[None, :] * szn,
                        mask=(rows[:, None] < R) & (cols[None, :] < N), other=float("-inf"))
            d = (z.to(tl.float32) - m[:, None]) * c
            d = tl.maximum(d, -1.0e4, propagate_nan=tl.PropagateNan.ALL)  # NaN stays NaN
            p = tl.math.exp2(d)
            lsum += tl.sum(p, 1)
            a += tl.sum(p * d, 1)
        seen = (lsum > 0) | (lsum != lsum)
        l_safe = tl.where(seen, lsum, 1.0)
        h = tl.where(seen, (tl.math.log2(l_safe) - a / l_safe) * 0.6931471805599453, 0.0)
        tl.store(ENT + rows * K + k, h, mask=rows < R)


@triton.jit
def _sweep_qk(Q, Kt, C, ENT, H, Sq, Sk, D, K, GROUP, offset,
              sqb, sqh, sqm, sqd, skb, skh, skn, skd,
              BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
              KP: tl.constexpr, CAUSAL: tl.constexpr, DOT_PREC: tl.constexpr):
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)  # 64-bit base offsets
    h = (pid_bh % H).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_d = tl.arange(0, BLOCK_D)
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                mask=(offs_m[:, None] < Sq) & (offs_d[None, :] < D), other=0.0)
    k_base = Kt + b * skb + (h // GROUP) * skh
    c = tl.load(C + tl.arange(0, KP), mask=tl.arange(0, KP) < K, other=1.0)
    m = tl.full([BLOCK_R], -1.0e30, dtype=tl.float32)
    lsum = tl.zeros([BLOCK_R, KP], dtype=tl.float32)
    a = tl.zeros([BLOCK_R, KP], dtype=tl.float32)
    hi = Sk
    if CAUSAL:
        hi = tl.minimum(Sk, tl.maximum(tl.program_id(0) * BLOCK_R + BLOCK_R + offset, 0))
    for n0 in range(0, hi, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        k = tl.load(k_base + cols[:, None] * skn + offs_d[None, :] * skd,
                    mask=(cols[:, None] < Sk) & (offs_d[None, :] < D), other=0.0)
        z = tl.dot(q, tl.trans(k), input_precision=DOT_PREC)  # [BR, BN]
        ok = cols[None, :] < Sk
        if CAUSAL:
            ok = ok & (cols[None, :] <= offs_m[:, None] + offset)
        z = tl.where(ok, z, float("-inf"))
        m, lsum, a = _sweep_update(z, m, lsum, a, c)
    _sweep_store(ENT + pid_bh.to(tl.int64) * Sq * K, offs_m, Sq, K, lsum, a, KP)


_AUTOTUNED: dict[str, object] = {}


def _gpu(kind: str):
    if kind not in _AUTOTUNED:
        if kind == "logits":
            cfgs = [triton.Config({"BLOCK_R": 16, "BLOCK_N": 32}, num_warps=8),
                    triton.Config({"BLOCK_R": 8, "BLOCK_N": 64}, num_warps=8),
                    triton.Config({"BLOCK_R": 32, "BLOCK_N": 32}, num_warps=8)]
            _AUTOTUNED[kind] = triton.autotune(cfgs, key=["KP"])(_sweep_logits)
        elif kind == "kouter":
            cfgs = [triton.Config({"BLOCK_R": 8, "BLOCK_N": 256}, num_warps=4),
                    triton.Config({"BLOCK_R": 16, "BLOCK_N": 128}, num_warps=4),
                    triton.Config({"BLOCK_R": 4, "BLOCK_N": 512}, num_warps=4)]
            _AUTOTUNED[kind] = triton.autotune(cfgs, key=["K"])(_sweep_logits_kouter)
        else:
            cfgs = [triton.Config({"BLOCK_R": 32, "BLOCK_N": 32}, num_warps=8),
                    triton.Config({"BLOCK_R": 64, "BLOCK_N": 16}, num_warps=8)]
            _AUTOTUNED[kind] = triton.autotune(cfgs, key=["KP", "BLOCK_D", "CAUSAL"])(_sweep_qk)
    return _AUTOTUNED[kind]


# logits form: "kouter" (row max, then one pass per ε_k over cache-resident rows; 13.7× over 16
# separate passes on an H200) or "online" (one pass with a K-wide state; 6.1×): see RESULTS.md
METHOD = "kouter"


def entropy_sweep_fwd(logits: Tensor | None, eps: Tensor, *, q: Tensor | None = None,
                      k: Tensor | None = None, causal: bool = False,
                      method: str | None = None) -> Tensor:
    """Entropies [..., K] (logits form) or [B, H, Sq, K] (q/k form), float32."""
    src = logits if logits is not None else q
    assert src is not None
    K = eps.numel()
    kp = max(2, next_pow2(K))
    c = (LOG2E / eps.to(torch.float64)).to(device=src.device, dtype=torch.float32)  # [K]
    interp = interpreting()
    if logits is not None:
        N = logits.shape[-1]
        R = logits.numel() // N if N else 0
        if R == 0 or N == 0:  # no rows, or rows without atoms (H = 0)
            return torch.zeros((*logits.shape[:-1], K), dtype=torch.float32, device=src.device)
        z = logits.reshape(R, N)  # [R, N]
        ent = new_output((R, K), torch.float32, z.device)
        args = (z, c, ent, R, N, K, z.stride(0), z.stride(1))
        if (method or METHOD) == "kouter":
            if interp:
                _sweep_logits_kouter[(cdiv(R, 8),)](*args, BLOCK_R=8, BLOCK_N=16)
            else:
                _gpu("kouter")[lambda meta: (cdiv(R, meta["BLOCK_R"]),)](*args)
        elif interp:
            _sweep_logits[(cdiv(R, 16),)](*args, BLOCK_R=16, BLOCK_N=16, KP=kp)
        else:
            _gpu("logits")[lambda meta: (cdiv(R, meta["BLOCK_R"]),)](*args, KP=kp)
        return ent.reshape(*logits.shape[:-1], K)
    assert q is not None and k is not None
    B, H, Sq, D = q.shape
    if B * H * Sq == 0 or k.shape[2] == 0:
        return torch.zeros((B, H, Sq, K), dtype=torch.float32, device=q.device)
    ent = new_output((B, H, Sq, K), torch.float32, q.device)
    block_d = max(16, next_pow2(D))
    prec = "ieee" if q.dtype == torch.float32 else "tf32"
    qk_args = (q, k, c, ent, H, Sq, k.shape[2], D, K, H // k.shape[1], k.shape[2] - Sq,
               *q.stride(), *k.stride())
    if interp:
        _sweep_qk[(cdiv(Sq, 16), B * H)](*qk_args, BLOCK_R=16, BLOCK_N=16, BLOCK_D=block_d,
                                                KP=kp, CAUSAL=causal, DOT_PREC=prec)
    else:
        _gpu("qk")[lambda meta: (cdiv(Sq, meta["BLOCK_R"]), B * H)](
            *qk_args, BLOCK_D=block_d, KP=kp, CAUSAL=causal, DOT_PREC=prec)
    return ent
