"""Reference twin of the fused HJ attention backward (pure PyTorch, closed form, chunked).

With s_ij = scale·q_i·k_j + bias_ij, out_i = Σ_j π_ij v_j, lse_i = log Σ_j e^{s_ij} and
H_i = lse_i − Σ_j π_ij s_ij, the upstream gradients (dO_i, g_lse_i, g_H_i) give per score

    ds_ij = π_ij · (dO_i·v_j + c_i − g_H_i·ln2·x_ij),
    c_i   = −dO_i·out_i + g_lse_i + g_H_i·(ln2·r_i − H_i)          (`row_terms`)

(∂lse/∂s_j = π_j, ∂H/∂s_j = −π_j (s_j − E_π[s]), ∂out/∂s_j = π_j (v_j − out)), where the scores
are taken relative to the forward's row max in base 2, x_ij = t_ij − m_i with t = log₂e·s
recomputed bitwise as the forward did (`chunk_scores`), and (m_i, r_i = log₂ l_i) are the
forward's lse_parts: π_ij = 2^{x_ij − r_i} and E_π[s] − s_j = ln2·(r_i − x_ij) − H_i. Nothing
of size |lse| enters: a row at lse = −1e9 (a −1e9 mask) or Hopf–Cole at ε = 1e-6 keeps log l
(rebuilding π from fp32 lse would give Σ_j π_j = Sk there). Then

    dq_i = scale·Σ_j ds_ij k_j,   dk_j = scale·Σ_i ds_ij q_i,   dv_j = Σ_i π_ij dO_i,
    dbias_ij = ds_ij.

A top-k weight's gradient adds a dense part −π_ij·Σ_t g_t w_t to c_i and a sparse part at its k
keys (`topk_grad`). Keys are walked in chunks (as the forward twin), so at most BLOCK_SCORES
scores exist at once: memory O((Sq + Sk)·D), not the recompute path's O(Sq·Sk). The Triton
kernel (`kernels/triton/hj_attention_bwd.py`) has the same signature.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hjplug.kernels._checks import stats_dtype
from hjplug.kernels.reference._online import LN2, LOG2E, unpack_parts
from hjplug.kernels.reference.hj_attention import (
    _splits,
    as_4d,
    as_additive,
    bias_block,
    chunk_scores,
    key_range,
)

__all__ = ["hj_attention_bwd", "one_row", "reduce_to", "row_terms"]

BLOCK_SCORES = 1 << 18  # scores per block, as the forward twin
KEY_CHUNK = 512


def row_terms(out: Tensor, parts: Tensor, ent: Tensor, g_out: Tensor | None,
              g_lse: Tensor | None, g_ent: Tensor | None) -> tuple[Tensor, Tensor]:
    """(c [B,H,Sq], g_H [B,H,Sq]) in the statistics dtype from the forward's out, lse_parts
    [B,H,Sq,2] = (m, r = log₂ l) and entropy; missing gradients count as zero. Rows with no
    visible key (r = −inf) get c = 0 (their π is 0: nothing flows)."""
    r = parts[..., 1]
    ct = r.dtype
    c = torch.zeros_like(r)
    if g_out is not None:
        c -= torch.linalg.vecdot(g_out.to(ct), out.to(ct))  # −dO·out
    if g_lse is not None:
        c += g_lse.to(ct)
    gh = torch.zeros_like(r) if g_ent is None else g_ent.to(ct)
    if g_ent is not None:
        c += gh * (r * LN2 - ent)  # g_H·(E_π[s] − ln2·m)
    return c.masked_fill(r == -math.inf, 0.0), gh


def one_row(bias: Tensor | None) -> bool:
    """The bias has a single query row (e.g. [B, H, 1, Sk], [Sk]): its gradient is summed over
    queries (never B·H·Sq·Sk). An expanded view with Sq rows has one gradient per element."""
    return bias is not None and (bias.dim() < 2 or bias.shape[-2] == 1)


def reduce_to(g: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Sum a [B, H, Sq, Sk]-like gradient over the dims a broadcast `shape` had as 1 (or lacked)."""
    lead = g.dim() - len(shape)
    if lead:
        g = g.sum(dim=tuple(range(lead)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return (g.sum(dim=dims, keepdim=True) if dims else g).reshape(shape)


def hj_attention_bwd(
    q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float, causal: bool,
    window: int, parts: Tensor, g_out: Tensor | None, c: Tensor, gh: Tensor,
    needs_bias: bool = False, precision: str = "ieee", kv_same: bool = False,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(dq, dk, dv, dbias) from the forward's lse_parts [B,H,Sq,2] and the row terms (c, g_H) of
    `row_terms`; g_out [B,H,Sq,Dv] or None. dbias (in bias's own shape) only when needs_bias and
    bias is a float tensor. Computes in fp32 (fp64 stays; `precision` is the kernel's fp32 dot
    mode, accepted for the same signature: the twin is always exact), returns input dtypes.
    kv_same: v is k, one tensor (Hopf–Cole's atoms): dk is its whole gradient, dv is None."""
    B, H, Sq, D = q.shape
    Hk, Sk, Dv = k.shape[1], k.shape[2], v.shape[-1]
    g = H // Hk
    ct = stats_dtype(q.dtype)
    dev = q.device
    win = window if window > 0 else -1
    add = as_4d(as_additive(bias, ct, LOG2E))  # base 2 (as the forward twin), its own shape
    want_db = needs_bias and bias is not None and bias.is_floating_point()
    # dbias in the bias's own batch / head extent (summed over a broadcast dim chunk by chunk:
    # a [1, H, Sq, Sk] bias never gets a [B, H, Sq, Sk] buffer) and over queries for one row
    db_b, db_h = (1, 1) if add is None else (add.shape[0], add.shape[1])
    db_shape = (db_b, db_h, 1 if one_row(bias) else Sq, Sk)
    dbias = torch.zeros(db_shape, dtype=ct, device=dev) if want_db else None
    qg = q.view(B, Hk, g, Sq, D)
    m_all, r_all = unpack_parts(parts.to(ct))  # r = +inf in rows with no visible key: π = 0
    m_g, r_g = m_all.view(B, Hk, g, Sq), r_all.view(B, Hk, g, Sq)
    alpha = scale * LOG2E  # t = alpha·q·k + log₂e·bias, as the forward twin
    c_g = c.to(ct).view(B, Hk, g, Sq)
    gh_g = gh.to(ct).view(B, Hk, g, Sq)
    go_g = None if g_out is None else g_out.view(B, Hk, g, Sq, Dv)
    dq = torch.zeros(B, Hk, g, Sq, D, dtype=ct, device=dev)
    dk = torch.zeros(B, Hk, Sk, D, dtype=ct, device=dev)
    dv = torch.zeros(B, Hk, Sk, Dv, dtype=ct, device=dev)
    # once per call: which guards the chunks need (each costs a pass over the scores)
    may_remove = add is not None or causal or win > 0  # some score can be −inf
    nan_rows = bool(torch.isnan(m_g).any() or torch.isnan(r_g).any() or torch.isnan(c_g).any())
    use_gh = bool(gh_g.ne(0).any())  # an entropy gradient: the −g_H·s term
    cs = max(1, min(Sk, chunk or KEY_CHUNK))
    rows = max(1, BLOCK_SCORES // (g * cs))  # queries (of one kv-head) per block
    sq1 = max(Sq, 1)
    # blocks as the forward twin: several kv-heads at once when their queries fit (small Sq)
    heads = _splits(Hk, rows // sq1) if rows >= sq1 else [(h, h + 1) for h in range(Hk)]
    queries = [(0, Sq)] if rows >= sq1 else _splits(Sq, rows)
    for b in range(B):
        for h0, h1 in heads:
            for i0, i1 in queries:
                nh, nq = h1 - h0, i1 - i0
                hs = slice(h0, h1)
                qb = qg[b, hs, :, i0:i1].to(ct).reshape(nh, g * nq, D)  # [nh, g·nq, D]
                mb = m_g[b, hs, :, i0:i1, None]  # [nh, g, nq, 1]
                rb = r_g[b, hs, :, i0:i1, None]
                cb = c_g[b, hs, :, i0:i1, None]
                hb = gh_g[b, hs, :, i0:i1, None] * LN2  # g_H·ln2 (x is in base 2)
                gob = None if go_g is None else go_g[b, hs, :, i0:i1].to(ct).reshape(
                    nh, g * nq, Dv)  # [nh, g·nq, Dv]
                lo, hi = key_range(i0, i1, Sq, Sk, causal, win)
                for j0 in range(lo, hi, cs):
                    j1 = min(hi, j0 + cs)
                    C = j1 - j0
                    kb = k[b, hs, j0:j1].to(ct)  # [nh, C, D]
                    vb = v[b, hs, j0:j1].to(ct)  # [nh, C, Dv]
                    band = i0 + Sk - Sq - j0 if causal or win > 0 else None
                    s = chunk_scores(qb, kb, alpha, None if add is None else
                                     bias_block(add, b, h0, h1, g, i0, i1, j0, j1), nq, band,
                                     causal, win
                                     ).view(nh, g, nq, C)  # t, base 2
                    removed = s == -math.inf if may_remove and (nan_rows or use_gh) else None
                    s.sub_(mb)  # x = t − m: exact at the forward's max
                    # π [nh, g, nq, C]; x itself is needed again only for the entropy term
                    p = torch.exp2(s - rb) if use_gh else s.sub_(rb).exp2_()
                    if removed is not None and nan_rows:  # π = 0 at removed keys, NaN rows too
                        p.masked_fill_(removed, 0.0)
                    p3 = p.view(nh, g * nq, C)
                    if gob is not None:  # dO·v_j + c_i  [nh, g, nq, C]
                        bracket = torch.bmm(gob, vb.mT).view(nh, g, nq, C).add_(cb)
                        dv[b, hs, j0:j1].baddbmm_(p3.mT, gob)  # [nh, C, Dv]
                    else:
                        bracket = cb.expand(nh, g, nq, C)
                    if use_gh:
                        if removed is not None:  # a finite score there: no 0·∞
                            s.masked_fill_(removed, 0.0)
                        if gob is not None:  # bracket is this chunk's own buffer
                            bracket.addcmul_(hb, s, value=-1.0)
                        else:
                            bracket = bracket - hb * s
                    # π = 0 (a key the forward removed: base-2 score −inf, e.g. bias finfo.min,
                    # or an underflow): ds = 0, not 0·∞ where −g_H·s overflows (|g_H·s| > 3e38)
                    zero = p == 0 if use_gh else None
                    ds = p.mul_(bracket)  # [nh, g, nq, C]
                    if removed is not None and nan_rows:  # 0, not 0·NaN, at removed keys
                        ds.masked_fill_(removed, 0.0)
                    if zero is not None:
                        ds.masked_fill_(zero, 0.0)
                    ds3 = ds.view(nh, g * nq, C)
                    if nq == Sq:  # all queries: a head's g·Sq rows are contiguous
                        dq[b, hs].view(nh, g * nq, D).baddbmm_(ds3, kb)  # [nh, g·nq, D]
                    else:
                        dq[b, hs, :, i0:i1] += torch.bmm(ds3, kb).view(nh, g, nq, D)
                    dk[b, hs, j0:j1].baddbmm_(ds3.mT, qb)  # [nh, C, D]
                    if dbias is not None:
                        part = ds if db_shape[2] > 1 else ds.sum(2, keepdim=True)  # [nh,g,·,C]
                        if db_h == 1:
                            part = part.sum((0, 1)).unsqueeze(0)  # [1, ·, C]
                        else:
                            part = part.reshape(nh * g, *part.shape[2:])  # [nh·g, ·, C]
                        rows_db = slice(i0, i1) if db_shape[2] > 1 else slice(0, 1)
                        heads_db = slice(h0 * g, h1 * g) if db_h > 1 else slice(0, 1)
                        dbias[b if db_b > 1 else 0, heads_db, rows_db, j0:j1] += part
    dq = dq.mul_(scale).view(B, H, Sq, D).to(q.dtype)
    if kv_same:  # one tensor: its gradient is dk + dv
        dk_all, dv_out = dv.add_(dk, alpha=scale).to(k.dtype), None
    else:
        dk_all, dv_out = dk.mul_(scale).to(k.dtype), dv.to(v.dtype)
    if dbias is not None:
        assert bias is not None
        dbias = reduce_to(dbias, bias.shape).to(bias.dtype)
    return dq, dk_all, dv_out, dbias
