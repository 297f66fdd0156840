"""Top-k Gibbs weights with key indices, in the one layout every path returns.

    topk_weights(π, k) = the k largest π_j along the last dim, descending, with their indices;
    index −1 where the weight is 0 (a removed key) or past the visible keys (k > N: weight 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["pad_topk", "topk_weights"]


def pad_topk(w: Tensor, idx: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Pad [..., kk] weights / indices to [..., k] with weight 0 and index −1 (kk ≤ k)."""
    pad = k - w.shape[-1]
    if pad <= 0:
        return w, idx
    return (torch.cat([w, w.new_zeros((*w.shape[:-1], pad))], dim=-1),
            torch.cat([idx, idx.new_full((*idx.shape[:-1], pad), -1)], dim=-1))


def topk_weights(p: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k largest weights of p [..., N] → ([..., k], int64 indices [..., k]; −1 for weight 0)."""
    w, idx = p.topk(min(k, p.shape[-1]), dim=-1)
    idx = torch.where(w > 0, idx, torch.full_like(idx, -1))
    return pad_topk(w, idx, k)
