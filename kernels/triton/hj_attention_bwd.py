"""Fused HJ attention backward in Triton (flash-style recompute of π from the saved lse_parts).

Same formula as the reference twin (`kernels/reference/hj_attention_bwd.py`):
    x_ij = u_ij − m_i,  u = log₂e·s (computed as the forward did),  s_ij = scale·q_i·k_j + bias_ij
    π_ij = 2^{x_ij − r_i}                 ((m_i, r_i = log₂ l_i): the forward's lse_parts)
    ds_ij = π_ij·(dO_i·v_j + c_i − g_H_i·ln2·x_ij)   (c, g_H: per-row terms, `row_terms`)
    dq = scale·ds·k,  dk = scale·dsᵀ·q,  dv = πᵀ·dO,  dbias = ds
Two launches, no atomics (but for the gradient of a float bias broadcast over batch or heads:
`_bwd_dq` then adds into the bias's own [B | 1, H | 1, Sq, Sk] atomically, untuned, instead of
writing a [B, H, Sq, Sk] buffer): `_bwd_dkdv` (one program per key block and kv-head; it walks the
query blocks of every query head of its group, so GQA sums in registers) and `_bwd_dq` (one
program per query block and head, keys split across programs when few query blocks exist;
the fp32 partial dq are summed after). The entropy gradient costs one multiply-add per score
over the plain flash backward. Scores are never stored (unless a full bias needs its
gradient, which is dense by nature): memory O((Sq + Sk)·D) beside the inputs.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from hjplug.kernels.reference._online import unpack_parts
from hjplug.kernels.triton._config import cdiv, interpreting, next_pow2
from hjplug.kernels.triton.hj_attention import (
    LN2,
    LOG2E,
    SPLIT_ALIGN,
    in_band,
    key_range,
    n_splits,
    needs_int64,
    program_coords,
)

__all__ = ["bwd_configs", "hj_attention_bwd"]


@triton.jit
def _dkdv_rows(dk, dv, db, k, v, q_base, do_base, bias_base, PARTS, C, GH, row_base, offs_m,
               offs_n, offs_d, n_ok, d_ok, lo, hi, Sq, offset, WINDOW, qk_scale, scale,
               sqm, sqd, sbm, sbn, sdm, sdd,
               BLOCK_M: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr,
               HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr, BIAS_ROW: tl.constexpr,
               DB_ROW: tl.constexpr, KV_SAME: tl.constexpr, DOT_PREC: tl.constexpr):
    """Query blocks [lo, hi) of one query head against one key block (kᵀ-major tiles)."""
    for start_m in range(lo, hi, BLOCK_M):
        rows = start_m + offs_m  # [BM]
        r_ok = rows < Sq
        qd_mask = r_ok[:, None] & d_ok[None, :]
        q = tl.load(q_base + rows[:, None] * sqm + offs_d[None, :] * sqd, mask=qd_mask,
                    other=0.0)  # [BM, BD]
        do = tl.load(do_base + rows[:, None] * sdm + offs_d[None, :] * sdd, mask=qd_mask,
                     other=0.0)  # [BM, BD]
        # rows past Sq (and rows with no visible key): r = +inf makes their π exactly 0
        m2 = tl.load(PARTS + 2 * (row_base + rows), mask=r_ok, other=0.0)  # [BM]
        r2 = tl.load(PARTS + 2 * (row_base + rows) + 1, mask=r_ok, other=float("inf"))
        c = tl.load(C + row_base + rows, mask=r_ok, other=0.0)
        gh = tl.load(GH + row_base + rows, mask=r_ok, other=0.0)
        u = tl.dot(k, tl.trans(q), input_precision=DOT_PREC) * qk_scale  # [BN, BM] log2
        if HAS_BIAS:
            if BIAS_ROW:
                bt = tl.load(bias_base + offs_n * sbn, mask=n_ok, other=0.0)  # [BN]
                u += bt.to(tl.float32)[:, None] * 1.4426950408889634
            else:
                bt = tl.load(bias_base + rows[None, :] * sbm + offs_n[:, None] * sbn,
                             mask=n_ok[:, None] & r_ok[None, :], other=0.0)  # [BN, BM]
                u += bt.to(tl.float32) * 1.4426950408889634
        if MASKED:  # transposed tile: keys along rows
            ok = in_band(n_ok[:, None] & r_ok[None, :], rows[None, :], offs_n[:, None], offset,
                         WINDOW, CAUSAL, HAS_WINDOW)
            u = tl.where(ok, u, float("-inf"))
        x = u - m2[None, :]  # [BN, BM]  exact at the forward's max (m finite: see launcher)
        p = tl.math.exp2(x - r2[None, :])  # [BN, BM]  πᵀ
        if MASKED or HAS_BIAS:  # removed keys: π = 0 even in a NaN row (as the twin)
            p = tl.where(x == float("-inf"), 0.0, p)  # (g_H·x = −∞ there: ds is zeroed below)
        dp = tl.dot(v, tl.trans(do), input_precision=DOT_PREC)  # [BN, BM]  (dO·v)ᵀ
        ds = p * (dp + c[None, :] - gh[None, :] * x)  # gh arrives as g_H·ln2 (x in log2)
        if MASKED or HAS_BIAS:  # π = 0 (removed keys, where π is 0 even in a NaN row, and
            ds = tl.where(p == 0.0, 0.0, ds)  # underflow): 0, not 0·NaN or 0·∞ (−g_H·u overflow)
        if KV_SAME:
            dk = tl.dot(p.to(do.dtype), do, dk, input_precision=DOT_PREC)
            dk = tl.dot((ds * scale).to(q.dtype), q, dk, input_precision=DOT_PREC)
        else:
            dv = tl.dot(p.to(do.dtype), do, dv, input_precision=DOT_PREC)
            dk = tl.dot(ds.to(q.dtype), q, dk, input_precision=DOT_PREC)
        if DB_ROW:
            db += tl.sum(ds, 1)
    return dk, dv, db


@triton.jit
def _bwd_dkdv(
    Q, K, V, BIAS, DO, PARTS, C, GH, DK, DV, DB,
    qk_scale, scale,
    sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
    sbb, sbh, sbm, sbn, sdb, sdh, sdm, sdd,
    H, Sq, Sk, D, GROUP, offset, WINDOW,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr,
    BIAS_ROW: tl.constexpr, DB_ROW: tl.constexpr, DOT_PREC: tl.constexpr,
    KV_SAME: tl.constexpr = False, INT64: tl.constexpr = False,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)  # over B·Hk
    Hk = H // GROUP
    b = pid_bh // Hk
    hk = pid_bh % Hk
    if INT64:
        b = b.to(tl.int64)
        hk = hk.to(tl.int64)
    n0 = pid_n * BLOCK_N
    offs_n = n0 + tl.arange(0, BLOCK_N)  # [BN]
    offs_m = tl.arange(0, BLOCK_M)  # [BM]
    offs_d = tl.arange(0, BLOCK_D)  # [BD]
    n_ok = offs_n < Sk
    d_ok = offs_d < D
    kv_mask = n_ok[:, None] & d_ok[None, :]
    k = tl.load(K + b * skb + hk * skh + offs_n[:, None] * skn + offs_d[None, :] * skd,
                mask=kv_mask, other=0.0)  # [BN, BD]
    if KV_SAME:  # Hopf–Cole: keys = values = W, one accumulator for dW = dk + dv
        v = k
    else:
        v = tl.load(V + b * svb + hk * svh + offs_n[:, None] * svn + offs_d[None, :] * svd,
                    mask=kv_mask, other=0.0)  # [BN, BD]
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)  # unused (removed) when KV_SAME

    # query rows that can see a key of this block (row i sees key j iff j ≤ i + offset when
    # causal; j > i + offset − W, and j < i + offset + W when not causal, with a window):
    # masked blocks [m_lo, m_f), then blocks that see every key of the block [m_f, m_hi)
    n_last = tl.minimum(n0 + BLOCK_N, Sk) - 1
    m_lo = 0
    m_hi = Sq
    if CAUSAL:
        m_lo = tl.maximum(n0 - offset, 0)
    if HAS_WINDOW:
        m_hi = tl.minimum(m_hi, tl.maximum(n_last - offset + WINDOW, 0))
        if not CAUSAL:
            m_lo = tl.maximum(m_lo, n0 - offset - WINDOW + 1)
    m_lo = (m_lo // BLOCK_M) * BLOCK_M
    m_hi = tl.maximum(m_hi, m_lo)
    m_f = m_lo
    if CAUSAL:  # rows i ≥ n0 + BN − 1 − offset see the whole block
        m_f = tl.cdiv(tl.maximum(n0 + BLOCK_N - 1 - offset, 0), BLOCK_M) * BLOCK_M
    if HAS_WINDOW:
        m_f = m_hi
    m_f = tl.where(n0 + BLOCK_N > Sk, m_hi, m_f)  # the key tail block: every tile masked
    m_f = tl.minimum(tl.maximum(m_f, m_lo), m_hi)

    for g in range(GROUP):
        h = hk * GROUP + g
        q_base = Q + b * sqb + h * sqh
        do_base = DO + b * sdb + h * sdh
        row_base = (b * H + h) * Sq
        bias_base = BIAS + b * sbb + h * sbh
        db = tl.zeros([BLOCK_N], dtype=tl.float32)
        dk, dv, db = _dkdv_rows(
            dk, dv, db, k, v, q_base, do_base, bias_base, PARTS, C, GH, row_base, offs_m,
            offs_n, offs_d, n_ok, d_ok, m_lo, m_f, Sq, offset, WINDOW, qk_scale, scale,
            sqm, sqd, sbm, sbn, sdm, sdd, BLOCK_M, True, CAUSAL, HAS_WINDOW, HAS_BIAS,
            BIAS_ROW, DB_ROW, KV_SAME, DOT_PREC)
        dk, dv, db = _dkdv_rows(
            dk, dv, db, k, v, q_base, do_base, bias_base, PARTS, C, GH, row_base, offs_m,
            offs_n, offs_d, n_ok, d_ok, m_f, m_hi, Sq, offset, WINDOW, qk_scale, scale,
            sqm, sqd, sbm, sbn, sdm, sdd, BLOCK_M, False, CAUSAL, HAS_WINDOW, HAS_BIAS,
            BIAS_ROW, DB_ROW, KV_SAME, DOT_PREC)
        if DB_ROW:
            tl.store(DB + (b * H + h) * Sk + offs_n, db, mask=n_ok)
    out_off = ((b * Hk + hk) * Sk + offs_n[:, None]) * D + offs_d[None, :]  # contiguous
    if KV_SAME:
        tl.store(DK + out_off, dk.to(DK.dtype.element_ty), mask=kv_mask)
    else:
        tl.store(DK + out_off, (dk * scale).to(DK.dtype.element_ty), mask=kv_mask)
        tl.store(DV + out_off, dv.to(DV.dtype.element_ty), mask=kv_mask)


@triton.jit
def _dq_keys(dq, q, do, m2, r2, c, gh, k_base, v_base, bias_base, DB, db_row, rows, r_ok,
             offs_n, offs_d, d_ok, lo, hi, Sk, offset, WINDOW, qk_scale,
             skn, skd, svn, svd, sbm, sbn,
             BLOCK_N: tl.constexpr, MASKED: tl.constexpr, CAUSAL: tl.constexpr,
             HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr, BIAS_ROW: tl.constexpr,
             DB_FULL: tl.constexpr, DOT_PREC: tl.constexpr, DB_ATOMIC: tl.constexpr):
    """Key blocks [lo, hi) against one query block."""
    for start_n in range(lo, hi, BLOCK_N):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        cols = start_n + offs_n  # [BN]
        n_ok = cols < Sk
        kv_mask = d_ok[None, :] & (cols[:, None] >= 0)  # [BN, BD]
        if MASKED:  # the key tail
            kv_mask = kv_mask & n_ok[:, None]
        k = tl.load(k_base + cols[:, None] * skn + offs_d[None, :] * skd, mask=kv_mask,
                    other=0.0)  # [BN, BD]
        v = tl.load(v_base + cols[:, None] * svn + offs_d[None, :] * svd, mask=kv_mask,
                    other=0.0)  # [BN, BD]
        u = tl.dot(q, tl.trans(k), input_precision=DOT_PREC) * qk_scale  # [BM, BN] log2
        if HAS_BIAS:
            if BIAS_ROW:
                bt = tl.load(bias_base + cols * sbn, mask=n_ok, other=0.0)  # [BN]
                u += bt.to(tl.float32)[None, :] * 1.4426950408889634
            else:
                bt = tl.load(bias_base + rows[:, None] * sbm + cols[None, :] * sbn,
                             mask=r_ok[:, None] & n_ok[None, :], other=0.0)  # [BM, BN]
                u += bt.to(tl.float32) * 1.4426950408889634
        if MASKED:
            ok = in_band(r_ok[:, None] & n_ok[None, :], rows[:, None], cols[None, :], offset,
                         WINDOW, CAUSAL, HAS_WINDOW)
            u = tl.where(ok, u, float("-inf"))
        x = u - m2[:, None]  # [BM, BN]  exact at the forward's max (m finite: see launcher)
        p = tl.math.exp2(x - r2[:, None])  # [BM, BN]  π
        if MASKED or HAS_BIAS:  # removed keys: π = 0 even in a NaN row (as the twin)
            p = tl.where(x == float("-inf"), 0.0, p)  # (g_H·x = −∞ there: ds is zeroed below)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PREC)  # [BM, BN]  dO·v
        ds = p * (dp + c[:, None] - gh[:, None] * x)
        if MASKED or HAS_BIAS:  # π = 0 (removed keys, where π is 0 even in a NaN row, and
            ds = tl.where(p == 0.0, 0.0, ds)  # underflow): 0, not 0·NaN or 0·∞ (−g_H·u overflow)
        if DB_FULL:
            if DB_ATOMIC:  # a bias broadcast over batch / heads: programs share its cells
                tl.atomic_add(DB + db_row[:, None] + cols[None, :], ds,
                              mask=r_ok[:, None] & n_ok[None, :])
            else:
                tl.store(DB + db_row[:, None] + cols[None, :], ds,
                         mask=r_ok[:, None] & n_ok[None, :])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=DOT_PREC)
    return dq


@triton.jit
def _bwd_dq(
    Q, K, V, BIAS, DO, PARTS, C, GH, DQ, DB,
    qk_scale, scale,
    sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
    sbb, sbh, sbm, sbn, sdb, sdh, sdm, sdd, sqs, sdbb, sdbh,
    H, Sq, Sk, D, GROUP, offset, WINDOW, split_len,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr,
    BIAS_ROW: tl.constexpr, DB_FULL: tl.constexpr, DOT_PREC: tl.constexpr,
    INT64: tl.constexpr = False, DB_ATOMIC: tl.constexpr = False,
):
    pid_m, _, pid_s, pid_s64, b, h, hk = program_coords(H, GROUP, CAUSAL, INT64)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BM]
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    r_ok = rows < Sq
    d_ok = offs_d < D
    qd_mask = r_ok[:, None] & d_ok[None, :]
    q = tl.load(Q + b * sqb + h * sqh + rows[:, None] * sqm + offs_d[None, :] * sqd,
                mask=qd_mask, other=0.0)  # [BM, BD]
    do = tl.load(DO + b * sdb + h * sdh + rows[:, None] * sdm + offs_d[None, :] * sdd,
                 mask=qd_mask, other=0.0)  # [BM, BD]
    row_off = (b * H + h) * Sq + rows
    m2 = tl.load(PARTS + 2 * row_off, mask=r_ok, other=0.0)  # [BM]
    r2 = tl.load(PARTS + 2 * row_off + 1, mask=r_ok, other=float("inf"))  # past Sq: π = 0
    c = tl.load(C + row_off, mask=r_ok, other=0.0)
    gh = tl.load(GH + row_off, mask=r_ok, other=0.0)
    k_base = K + b * skb + hk * skh
    v_base = V + b * svb + hk * svh
    bias_base = BIAS + b * sbb + h * sbh
    db_row = b * sdbb + h * sdbh + rows * Sk  # [BM] row starts in dbias [B | 1, H | 1, Sq, Sk]

    # keys of this block (and split), as the forward: masked [lo, lo_f), unmasked
    # [lo_f, hi_f), masked [hi_f, hi)
    lo, lo_f, hi_f, hi = key_range(pid_m, pid_s, split_len, Sk, offset, WINDOW, BLOCK_M,
                                   BLOCK_N, CAUSAL, HAS_WINDOW)

    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    dq = _dq_keys(dq, q, do, m2, r2, c, gh, k_base, v_base, bias_base, DB, db_row, rows, r_ok,
                  offs_n, offs_d, d_ok, lo, lo_f, Sk, offset, WINDOW, qk_scale,
                  skn, skd, svn, svd, sbm, sbn, BLOCK_N, True, CAUSAL, HAS_WINDOW, HAS_BIAS,
                  BIAS_ROW, DB_FULL, DOT_PREC, DB_ATOMIC)
    dq = _dq_keys(dq, q, do, m2, r2, c, gh, k_base, v_base, bias_base, DB, db_row, rows, r_ok,
                  offs_n, offs_d, d_ok, lo_f, hi_f, Sk, offset, WINDOW, qk_scale,
                  skn, skd, svn, svd, sbm, sbn, BLOCK_N, False, CAUSAL, HAS_WINDOW, HAS_BIAS,
                  BIAS_ROW, DB_FULL, DOT_PREC, DB_ATOMIC)
    dq = _dq_keys(dq, q, do, m2, r2, c, gh, k_base, v_base, bias_base, DB, db_row, rows, r_ok,
                  offs_n, offs_d, d_ok, hi_f, hi, Sk, offset, WINDOW, qk_scale,
                  skn, skd, svn, svd, sbm, sbn, BLOCK_N, True, CAUSAL, HAS_WINDOW, HAS_BIAS,
                  BIAS_ROW, DB_FULL, DOT_PREC, DB_ATOMIC)
    dq_off = pid_s64 * sqs + ((b * H + h) * Sq + rows[:, None]) * D + offs_d[None, :]
    tl.store(DQ + dq_off, (dq * scale).to(DQ.dtype.element_ty), mask=qd_mask)


# ----------------------------------------------------------------------------- configs / launch

_FIXED = {"BLOCK_M": 16, "BLOCK_N": 16}
_AUTOTUNED: dict[str, object] = {}
AUTOTUNE = True  # False: the first GPU config only
_KEY = ["BLOCK_D", "CAUSAL", "HAS_WINDOW", "HAS_BIAS", "DOT_PREC", "KV_SAME"]


def _cfg(bm: int, bn: int, warps: int, stages: int) -> triton.Config:
    return triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=warps, num_stages=stages)


def bwd_configs(which: str, exact_fp32: bool = False, half: bool = True,
                small_d: bool = True) -> list[triton.Config]:
    """Autotune candidates of `_bwd_dkdv` ("dkdv": a key block of BLOCK_N and its dk, dv
    accumulators stay in registers while query blocks of BLOCK_M stream past) or `_bwd_dq`
    ("dq": the transpose); the first is used when autotuning is off. Chosen from their sm_90
    resources (`benchmarks/sm90_resources.py --only backward`): no register spill and at least
    two warpgroups per SM (≤ 64 B spilled). dkdv's two fp32 accumulators make it
    register-bound: at D = 128 a 128-key block on 4 warps spills 2.4 KB, and capping registers
    (maxnreg) spills too."""
    if exact_fp32:  # FMA dots: small tiles (32×32 on 4 warps spills 3 KB at D=128)
        return ([_cfg(32, 32, 8, 2), _cfg(16, 32, 4, 2)] if which == "dkdv"
                else [_cfg(32, 32, 8, 2), _cfg(32, 16, 4, 2)])
    if not half:  # tf32: fp32 tiles in shared memory
        return ([_cfg(16, 128, 8, 2), _cfg(16, 64, 4, 2)] if which == "dkdv"
                else [_cfg(128, 32, 8, 2)])
    if which == "dkdv":
        if small_d:
            return [_cfg(32, 128, 8, 3), _cfg(32, 64, 4, 3), _cfg(64, 64, 8, 3),
                    _cfg(16, 64, 4, 3)]
        # D = 96/128: 32×64/4 warps spills 0.4 KB, 32×128/8 warps/3 stages 80 B; 128-key
        # blocks need 8 warps; 16×64 on 4 warps spills 72 B since the row max is loaded beside
        # log₂ l (lse_parts), on 8 warps nothing
        return [_cfg(16, 128, 8, 3), _cfg(32, 128, 8, 2), _cfg(16, 64, 8, 3)]
    if small_d:
        return [_cfg(128, 32, 8, 3), _cfg(64, 64, 4, 2), _cfg(128, 64, 8, 2),
                _cfg(64, 32, 4, 3)]
    return [_cfg(128, 32, 8, 3), _cfg(64, 32, 4, 3), _cfg(128, 64, 8, 2)]


def _kernel(which: str, exact_fp32: bool, half: bool, small_d: bool):
    fn = _bwd_dkdv if which == "dkdv" else _bwd_dq
    if interpreting():
        return fn
    key = (f"{which}{'-ieee' if exact_fp32 else ''}{'-half' if half else ''}"
           f"{'-d64' if small_d else ''}{'' if AUTOTUNE else '-fixed'}")
    if key not in _AUTOTUNED:
        configs = bwd_configs(which, exact_fp32, half, small_d)
        _AUTOTUNED[key] = triton.autotune(configs=configs if AUTOTUNE else configs[:1],
                                          key=_KEY + (["split_len"] if which == "dq" else []),
                                          )(fn)
    return _AUTOTUNED[key]


def hj_attention_bwd(
    q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float, causal: bool,
    window: int, parts: Tensor, g_out: Tensor | None, c: Tensor, gh: Tensor,
    needs_bias: bool = False, precision: str = "ieee", kv_same: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(dq, dk, dv, dbias) — the reference twin's signature and results (`precision`: the
    fp32 dot mode, "ieee" exact, "tf32" faster; half inputs use their own MMAs). kv_same: v is
    k, one tensor (Hopf–Cole's atoms): dk is its whole gradient and dv is None."""
    from hjplug.kernels.reference.hj_attention_bwd import one_row, reduce_to

    B, H, Sq, D = q.shape
    Hk, Sk = k.shape[1], k.shape[2]
    dev = q.device
    if g_out is None:
        g_out = torch.zeros_like(q)
    g_out = g_out.to(q.dtype)
    # lse_parts [B, H, Sq, 2] = (m, log₂ l), with log₂ l = +inf where no key is visible
    # (π = 0) and, in a NaN row, m = 0 and log₂ l = NaN (x = u − m stays −inf at removed keys,
    # which the kernels then zero, as the twin)
    m, r = unpack_parts(parts.float())  # r = +inf where no key is visible
    # a NaN row (NaN inputs): m = 0, r = NaN, so that row's π and gradients are NaN
    nan = torch.isnan(m) | torch.isnan(r)
    pa = torch.stack([m.masked_fill(nan, 0.0), r.masked_fill(nan, math.nan)], dim=-1).contiguous()
    c = c.float().contiguous()
    gh = (gh.float() * LN2).contiguous()  # g_H·s = (g_H·ln2)·u: one multiply less per score
    want_db = needs_bias and bias is not None and bias.is_floating_point()
    if bias is not None and bias.dtype == torch.bool:
        bias = torch.where(bias, 0.0, float("-inf")).to(torch.float32)
    bb = hb = 1  # dbias's batch / head extent: the bias's own (1 where it broadcasts)
    if bias is not None:
        b4 = bias
        while b4.dim() < 4:
            b4 = b4.unsqueeze(0)
        bb, hb = b4.shape[0], b4.shape[1]
        b4 = b4.expand(B, H, Sq, Sk)
        bstr = tuple(b4.stride())
    else:
        b4, bstr = pa, (0, 0, 0, 0)
    bias_row = bias is not None and bstr[2] == 0  # loads one row vector per key block
    db_row = want_db and one_row(bias)  # dbias per key, summed over queries
    db_full = want_db and not db_row
    interp = interpreting()
    prec = precision if q.dtype == torch.float32 else "tf32"
    block_d = max(16, next_pow2(D))
    fixed = dict(BLOCK_M=_FIXED["BLOCK_M"], BLOCK_N=_FIXED["BLOCK_N"], num_warps=4,
                 num_stages=1) if interp else {}
    strides = (*q.stride(), *k.stride(), *v.stride(), *bstr, *g_out.stride())
    dk = torch.empty((B, Hk, Sk, D), dtype=k.dtype, device=dev)
    dv = dk if kv_same else torch.empty((B, Hk, Sk, D), dtype=v.dtype, device=dev)
    # a full dbias is zero outside the visited (causal / window) band: zeros, not empty; in the
    # bias's own batch / head extent (programs of a broadcast dim add into it atomically), so a
    # [1, H, Sq, Sk] bias never gets a [B, H, Sq, Sk] buffer
    db_bh = (bb, hb) if db_full else (B, H)
    db = torch.zeros((*db_bh, Sq if db_full else 1, Sk), dtype=torch.float32, device=dev) \
        if want_db else pa
    db_atomic = db_full and (bb, hb) != (B, H)
    sdbb = hb * Sq * Sk if bb > 1 else 0  # element strides of dbias over batch / heads
    sdbh = Sq * Sk if hb > 1 else 0
    splits = n_splits(cdiv(Sq, 16 if interp else 128) * B * H, Sk, dev)
    align = 16 if interp else SPLIT_ALIGN
    split_len = cdiv(cdiv(Sk, splits), align) * align
    splits = cdiv(Sk, split_len)
    dq = torch.empty((splits, B, H, Sq, D), dtype=q.dtype if splits == 1 else torch.float32,
                     device=dev)
    big = needs_int64(q, k, v, g_out, dk, dq, b4 if bias is not None else None,
                       db if db_full else None)  # inputs and outputs (a full dbias: B·H·Sq·Sk)
    common = dict(CAUSAL=causal, HAS_WINDOW=window > 0, HAS_BIAS=bias is not None,
                  BIAS_ROW=bias_row, DOT_PREC=prec, INT64=big)
    shape_cfg = (prec == "ieee", q.dtype != torch.float32, block_d <= 64)
    kern = _kernel("dkdv", *shape_cfg)
    kern[lambda m: (cdiv(Sk, m["BLOCK_N"]), B * Hk)](
        q, k, v, b4, g_out, pa, c, gh, dk, dv, db, scale * LOG2E, scale, *strides,
        H, Sq, Sk, D, H // Hk, Sk - Sq, max(window, 0),
        BLOCK_D=block_d, DB_ROW=db_row, KV_SAME=kv_same, **common, **fixed)
    kern = _kernel("dq", *shape_cfg)
    if db_atomic and not interp:  # atomics are not idempotent: the autotuner's repeated runs
        cfg = bwd_configs("dq", *shape_cfg)[0]  # would add into dbias several times
        kern, fixed = _bwd_dq, dict(cfg.kwargs, num_warps=cfg.num_warps,
                                    num_stages=cfg.num_stages)
    kern[lambda m: (cdiv(Sq, m["BLOCK_M"]), B * H, splits)](
        q, k, v, b4, g_out, pa, c, gh, dq, db, scale * LOG2E, scale, *strides, dq.stride(0),
        sdbb, sdbh, H, Sq, Sk, D, H // Hk, Sk - Sq, max(window, 0), split_len,
        BLOCK_D=block_d, DB_FULL=db_full, DB_ATOMIC=db_atomic, **common, **fixed)
    dq_out = dq[0] if splits == 1 else dq.sum(0).to(q.dtype)
    dbias = None
    if want_db:
        assert bias is not None
        dbias = reduce_to(db, bias.shape).to(bias.dtype)
    return dq_out, dk, None if kv_same else dv, dbias
