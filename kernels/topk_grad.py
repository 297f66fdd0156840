"""Gradient through the top-k Gibbs weights w_t = π_{i, j_t} (keys j_t = the row's top-k).

    ∂w_t/∂s_ij = w_t·(δ_{j, j_t} − π_ij)
so upstream g_t add to the score gradient ds_ij a dense part −π_ij·Σ_t g_t w_t (folded into the
row term c_i of the fused backward) and a sparse part g_t w_t at the k keys j_t, applied here by
gather / scatter: dq_i += scale·Σ_t g_t w_t k_{j_t}, dk_{j_t} += scale·g_t w_t q_i,
dbias_{i, j_t} += g_t w_t. Cost O(B·H·Sq·k·D); the selection itself is not differentiated (as
torch.topk). Padding (index −1, weight 0) contributes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["TopkGrad", "topk_grad"]


@dataclass(frozen=True)
class TopkGrad:
    c: Tensor  # [B, H, Sq]  dense part: add to the row term c
    dq: Tensor  # [B, H, Sq, D]  sparse part of dq
    dk: Tensor  # [B, Hk, Sk, D]  sparse part of dk
    dbias: Tensor | None  # [B, H, Sq | 1, Sk] sparse part of dbias (summed over queries when
    #                        the bias has one row) or None


def topk_grad(q: Tensor, k: Tensor, scale: float, tw: Tensor, ti: Tensor, g_tw: Tensor,
              needs_bias: bool = False, one_row: bool = False) -> TopkGrad:
    """Parts of the (q, k, bias) gradients that flow through top-k weights tw / indices ti
    [B, H, Sq, kk] with upstream g_tw; computed in the statistics dtype of tw. one_row: the
    bias has a single query row (e.g. Hopf–Cole's b), so dbias is summed over queries
    ([B, H, 1, Sk], never B·H·Sq·Sk)."""
    B, H, Sq, D = q.shape
    Hk, Sk = k.shape[1], k.shape[2]
    g = H // Hk
    ct = tw.dtype
    valid = ti >= 0
    w = torch.where(valid, g_tw.to(ct) * tw, 0.0)  # [B, H, Sq, kk]  g_t·w_t
    idx = ti.clamp_min(0)  # [B, H, Sq, kk]
    kk = idx.shape[-1]
    flat = idx.reshape(B, Hk, g * Sq * kk)  # key index per (head in group, row, slot)
    gidx = flat.unsqueeze(-1).expand(-1, -1, -1, D)  # [B, Hk, g·Sq·kk, D]
    keys = k.to(ct).gather(2, gidx).view(B, Hk, g, Sq, kk, D)  # k_{j_t}
    dq = scale * torch.einsum("bhgit,bhgitd->bhgid", w.view(B, Hk, g, Sq, kk), keys)
    src = scale * w.view(B, Hk, g, Sq, kk, 1) * q.to(ct).view(B, Hk, g, Sq, 1, D)
    dk = torch.zeros(B, Hk, Sk, D, dtype=ct, device=q.device)
    dk.scatter_add_(2, gidx, src.reshape(B, Hk, g * Sq * kk, D))
    dbias = None
    if needs_bias and one_row:
        dbias = torch.zeros(B, H, 1, Sk, dtype=ct, device=q.device)
        dbias.scatter_add_(3, idx.reshape(B, H, 1, Sq * kk), w.reshape(B, H, 1, Sq * kk))
    elif needs_bias:
        dbias = torch.zeros(B, H, Sq, Sk, dtype=ct, device=q.device)
        dbias.scatter_add_(3, idx, w)
    return TopkGrad(-w.sum(-1), dq.reshape(B, H, Sq, D), dk, dbias)
