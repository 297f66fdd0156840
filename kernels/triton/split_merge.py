"""Merge split-K partial attention results in one Triton launch (reference twin:
kernels/reference/split_merge.py, same signature and formula):

    lse = LSE_s lse_s = m + log z,  w_s = e^{lse_s − lse} (computed as e^{lse_s − m − log z}),
    out = Σ_s w_s·out_s,  H = Σ_s w_s·(H_s − ln w_s)

One program per block of rows reads the S partial (lse, H) pairs once, then streams the S
partial outputs; the cast to the input dtype is fused. Replaces about a dozen PyTorch kernels
(and their host launches) after a split-K launch, which matters most for decode (Sq = 1,
many splits, a few microseconds of GPU work per call).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from hjplug.kernels.triton._config import cdiv, interpreting, next_pow2

__all__ = ["merge_splits"]


@triton.jit
def _merge(OUT, LSE, ENT, OUT_T, LSE_T, ENT_T, R, D, S, sos, sor,
           S_PAD: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)  # [BR]
    ss = tl.arange(0, S_PAD)  # [SP]
    ok = (ss[:, None] < S) & (rows[None, :] < R)  # [SP, BR]
    lse = tl.load(LSE + ss[:, None] * R + rows[None, :], mask=ok, other=float("-inf"))
    ent = tl.load(ENT + ss[:, None] * R + rows[None, :], mask=ok, other=0.0)
    m = tl.max(lse, 0)  # [BR]
    nan = tl.sum(tl.where(lse != lse, 1.0, 0.0), 0) > 0  # a NaN split makes the row NaN
    seen = (m > float("-inf")) | nan
    m_safe = tl.where(seen, m, 0.0)
    z = tl.sum(tl.exp(lse - m_safe[None, :]), 0)  # [BR]; 0 for a row with no visible key
    logz = tl.log(tl.where(seen, z, 1.0))
    tot = tl.where(seen, m_safe + logz, float("-inf"))
    tot = tl.where(nan, float("nan"), tot)
    # weights relative to the max m, not to the rounded total: at |lse| ≫ log z, e^{lse_s −
    # lse} loses log z (the weights stop summing to 1)
    logz_safe = tl.where(nan, float("nan"), tl.where(seen, logz, 0.0))
    logw = (lse - m_safe[None, :]) - logz_safe[None, :]  # [SP, BR]
    w = tl.exp(logw)  # 0 for empty splits
    h = tl.sum(w * (ent - tl.where(w > 0, logw, 0.0)), 0)  # chain rule; empty splits add 0
    tl.store(LSE_T + rows, tot, mask=rows < R)
    tl.store(ENT_T + rows, h, mask=rows < R)
    offs_d = tl.arange(0, BLOCK_D)
    io = (rows[:, None] < R) & (offs_d[None, :] < D)  # [BR, BD]
    acc = tl.zeros([BLOCK_R, BLOCK_D], dtype=tl.float32)
    for s in range(0, S):
        s64 = tl.full([], s, tl.int64)  # 64-bit: S·B·H·Sq·D may exceed 2³¹
        ws = tl.exp((tl.load(LSE + s64 * R + rows, mask=rows < R, other=float("-inf"))
                     - m_safe) - logz_safe)  # [BR]
        part = tl.load(OUT + s64 * sos + rows[:, None] * sor + offs_d[None, :], mask=io,
                       other=0.0)
        acc += tl.where(ws[:, None] == 0, 0.0, ws[:, None] * part)  # NaN weights propagate
    tl.store(OUT_T + rows[:, None] * D + offs_d[None, :], acc.to(OUT_T.dtype.element_ty), mask=io)


def merge_splits(out: Tensor, lse: Tensor, ent: Tensor, dtype: torch.dtype
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """out [S, *rows, D] fp32, lse / ent [S, *rows] fp32 → (out [*rows, D] in `dtype`, lse, H)."""
    S, D = out.shape[0], out.shape[-1]
    rows_shape = lse.shape[1:]
    R = lse[0].numel()
    out2 = out.reshape(S, R, D)  # [S, R, D] (a view for the launcher's contiguous buffers)
    lse2 = lse.reshape(S, R).contiguous()
    ent2 = ent.reshape(S, R).contiguous()
    if out2.stride(2) != 1:
        out2 = out2.contiguous()
    o = torch.empty((R, D), dtype=dtype, device=out.device)
    lse_t = torch.empty(R, dtype=torch.float32, device=out.device)
    ent_t = torch.empty(R, dtype=torch.float32, device=out.device)
    block_d = max(16, next_pow2(D))
    block_r = 16 if interpreting() else max(1, min(64, 4096 // block_d))
    grid = (cdiv(R, block_r),)
    _merge[grid](out2, lse2, ent2, o, lse_t, ent_t, R, D, S, out2.stride(0), out2.stride(1),
                 S_PAD=max(2, next_pow2(S)), BLOCK_R=block_r, BLOCK_D=block_d,
                 num_warps=4)
    return o.view(*rows_shape, D), lse_t.view(rows_shape), ent_t.view(rows_shape)
