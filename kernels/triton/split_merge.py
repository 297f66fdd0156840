"""Merge split-K partial attention results in one Triton launch (reference twin:
kernels/reference/split_merge.py, same signature and formula). Per row, from each split's
lse_parts (m_s, r_s = log₂ l_s), base 2:

    M = max_s m_s,  y_s = (m_s − M) + r_s,  R = log₂ Σ_s 2^{y_s},  w_s = 2^{y_s − R}
    lse = ln2·(M + R),  out = Σ_s w_s·out_s,  H = Σ_s w_s·(H_s − ln w_s),  parts = (M, R)

No term of size |lse| enters the weights (they sum to 1 at any lse). One program per block of
rows reads the S partial (m, r, H) once, then streams the S partial outputs; the cast to the
input dtype is fused. Replaces about a dozen PyTorch kernels (and their host launches) after a
split-K launch, which matters most for decode (Sq = 1, many splits, a few microseconds of GPU
work per call).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from hjplug.kernels.triton._config import cdiv, interpreting, next_pow2

__all__ = ["merge_splits"]


@triton.jit
def _merge(OUT, PARTS, ENT, OUT_T, LSE_T, ENT_T, PARTS_T, R, D, S, sos, sor,
           S_PAD: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_R + tl.arange(0, BLOCK_R)  # [BR]
    ss = tl.arange(0, S_PAD)  # [SP]
    ok = (ss[:, None] < S) & (rows[None, :] < R)  # [SP, BR]
    off = ss[:, None] * R + rows[None, :]  # [SP, BR]
    m_s = tl.load(PARTS + 2 * off, mask=ok, other=-1.0e30)
    r_s = tl.load(PARTS + 2 * off + 1, mask=ok, other=float("-inf"))
    ent = tl.load(ENT + off, mask=ok, other=0.0)
    m = tl.max(m_s, 0)  # [BR]; ≥ −1e30, finite
    nan = tl.sum(tl.where((m_s != m_s) | (r_s != r_s), 1.0, 0.0), 0) > 0  # NaN split: NaN row
    y = (m_s - m[None, :]) + r_s  # [SP, BR]; −inf for empty splits
    top = tl.max(y, 0)
    top_safe = tl.where(top > float("-inf"), top, 0.0)
    z = tl.sum(tl.math.exp2(y - top_safe[None, :]), 0)  # [BR]; 0 for a row with no visible key
    seen = (z > 0) | nan
    r_tot = tl.where(seen, top_safe + tl.math.log2(tl.where(z > 0, z, 1.0)), float("-inf"))
    r_tot = tl.where(nan, float("nan"), r_tot)
    m = tl.where(nan, float("nan"), m)
    r_safe = tl.where(seen, r_tot, 0.0)  # NaN stays NaN
    logw = y - r_safe[None, :]  # [SP, BR]; base 2
    w = tl.math.exp2(logw)  # 0 for empty splits
    lnw = tl.where(w > 0, logw * 0.6931471805599453, 0.0)
    h = tl.sum(w * (ent - lnw), 0)  # chain rule; empty splits add 0
    lse = tl.where(seen, (m + r_tot) * 0.6931471805599453, float("-inf"))
    tl.store(LSE_T + rows, lse, mask=rows < R)
    tl.store(ENT_T + rows, h, mask=rows < R)
    tl.store(PARTS_T + 2 * rows, m, mask=rows < R)
    tl.store(PARTS_T + 2 * rows + 1, r_tot, mask=rows < R)
    offs_d = tl.arange(0, BLOCK_D)
    io = (rows[:, None] < R) & (offs_d[None, :] < D)  # [BR, BD]
    acc = tl.zeros([BLOCK_R, BLOCK_D], dtype=tl.float32)
    for s in range(0, S):
        s64 = tl.full([], s, tl.int64)  # 64-bit: S·B·H·Sq·D may exceed 2³¹
        ms = tl.load(PARTS + 2 * (s64 * R + rows), mask=rows < R, other=-1.0e30)
        rs = tl.load(PARTS + 2 * (s64 * R + rows) + 1, mask=rows < R, other=float("-inf"))
        ws = tl.math.exp2(((ms - m) + rs) - r_safe)  # [BR]
        part = tl.load(OUT + s64 * sos + rows[:, None] * sor + offs_d[None, :], mask=io,
                       other=0.0)
        acc += tl.where(ws[:, None] == 0, 0.0, ws[:, None] * part)  # NaN weights propagate
    tl.store(OUT_T + rows[:, None] * D + offs_d[None, :], acc.to(OUT_T.dtype.element_ty), mask=io)


def merge_splits(out: Tensor, parts: Tensor, ent: Tensor, dtype: torch.dtype
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """out [S, *rows, D] fp32, parts [S, *rows, 2] fp32, ent [S, *rows] fp32 → (out [*rows, D]
    in `dtype`, lse, H [*rows], parts [*rows, 2])."""
    S, D = out.shape[0], out.shape[-1]
    rows_shape = ent.shape[1:]
    R = ent[0].numel()
    out2 = out.reshape(S, R, D)  # [S, R, D] (a view for the launcher's contiguous buffers)
    parts2 = parts.reshape(S, R, 2).contiguous()
    ent2 = ent.reshape(S, R).contiguous()
    if out2.stride(2) != 1:
        out2 = out2.contiguous()
    o = torch.empty((R, D), dtype=dtype, device=out.device)
    lse_t = torch.empty(R, dtype=torch.float32, device=out.device)
    ent_t = torch.empty(R, dtype=torch.float32, device=out.device)
    parts_t = torch.empty((R, 2), dtype=torch.float32, device=out.device)
    block_d = max(16, next_pow2(D))
    block_r = 16 if interpreting() else max(1, min(64, 4096 // block_d))
    grid = (cdiv(R, block_r),)
    _merge[grid](out2, parts2, ent2, o, lse_t, ent_t, parts_t, R, D, S, out2.stride(0),
                 out2.stride(1), S_PAD=max(2, next_pow2(S)), BLOCK_R=block_r, BLOCK_D=block_d,
                 num_warps=4)
    return (o.view(*rows_shape, D), lse_t.view(rows_shape), ent_t.view(rows_shape),
            parts_t.view(*rows_shape, 2))
