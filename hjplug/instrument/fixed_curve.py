"""The sweep's fixed-input curves: H(π_i(λ)) of every chosen head at the undeformed inputs.

One forward at λ = 1 keeps each chosen block's logits z₀ (or its q, k when no mask or bias is
involved); `hjplug.kernels.entropy_sweep` then gives, in one pass over the keys, the entropies
of softmax(z₀/λ) for every λ of the grid (fused Triton on CUDA, the blockwise reference
elsewhere) instead of one forward per λ. Since ∂H/∂ε = Var_π(z)/ε³ ≥ 0 (paper-notes §1), each
row's curve must rise with λ: the whole grid is checked, row by row.

Contrast with the sweep's main curves: those come from the deformed model, whose later blocks
see moved inputs, so they need not be monotone; these isolate each head's own response.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from hjplug.instrument.records import MonotonicityViolation
from hjplug.instrument.stats import normalized, safe_mean

__all__ = ["FixedCurve", "curves", "entropy_of_logits", "entropy_of_qk"]

# block index → (entropy [B, H, Sq, S] at λ_0..λ_{S−1}, visible keys [B, H, Sq])
FixedCurve = dict[int, tuple[Tensor, Tensor]]


def entropy_of_logits(z0: Tensor, lam: Sequence[float]) -> tuple[Tensor, Tensor]:
    """z₀ [B, H, Sq, Sk] (−inf = removed key) → (H(softmax(z₀/λ_s)) [B, H, Sq, S], k_i)."""
    from hjplug.kernels import entropy_sweep

    keys = torch.isfinite(z0).sum(-1)  # [B, H, Sq]
    return entropy_sweep(z0, list(lam)), keys


def entropy_of_qk(q: Tensor, k: Tensor, scale: float, causal: bool, lam: Sequence[float]
                  ) -> tuple[Tensor, Tensor]:
    """z₀ = scale·q·kᵀ without materialising it (q [B, H, Sq, D], k [B, Hk, Sk, D], causal
    bottom-right): ε_s = λ_s/scale in entropy_sweep's unscaled q·kᵀ form."""
    from hjplug.integrations.huggingface.attention_math import visible_counts
    from hjplug.kernels import entropy_sweep

    B, H, Sq, _ = q.shape
    ent = entropy_sweep(q=q, k=k, eps=[v / scale for v in lam], causal=causal)
    return ent, visible_counts(None, causal, (B, H, Sq, k.shape[2]), q.device)


def curves(blocks: FixedCurve, heads_of: Callable[[int], list[int]], lam: Sequence[float],
           paths: Sequence[str], shape: tuple[int, int, int], tol: float,
           real: Tensor | Mapping[int, Tensor | None] | None = None
           ) -> tuple[Tensor, Tensor, list[MonotonicityViolation], int]:
    """(mean H [S, L, Hmax], mean H/log k, violations, rows × steps checked) for the chosen
    heads (NaN elsewhere); rows with k ≤ 1 or a non-finite entropy are left out, and padded
    queries (`real` [B, Sq] False, one for all blocks or one per block index) from the means
    (not from the monotonicity check)."""
    S, L, Hmax = shape
    ent = torch.full((S, L, Hmax), math.nan, dtype=torch.float64)
    nent = ent.clone()
    violations: list[MonotonicityViolation] = []
    checked = 0
    for i, (e, keys) in blocks.items():
        e = e.double()  # [B, H, Sq, S]
        valid = (keys > 1) & torch.isfinite(e).all(-1)  # [B, H, Sq]
        nrm = normalized(e, keys.unsqueeze(-1).expand_as(e))
        mean_ok = valid
        rows = real.get(i) if isinstance(real, Mapping) else real
        if rows is not None and rows.shape == (keys.shape[0], keys.shape[2]):
            mean_ok = valid & rows.to(valid.device)[:, None, :]
        for h in heads_of(i):
            ok = valid[:, h]
            for s in range(S):
                ent[s, i, h] = safe_mean(e[:, h, :, s], mean_ok[:, h])
                nent[s, i, h] = safe_mean(nrm[:, h, :, s], mean_ok[:, h])
            for s in range(S - 1):
                e0, e1 = e[:, h, :, s], e[:, h, :, s + 1]
                checked += int(ok.sum())
                drop = ok & (e1 < e0 - tol * (1 + e0.abs()))
                for b, q in drop.nonzero().tolist():
                    violations.append(MonotonicityViolation(
                        i, paths[i], h, b, q, float(lam[s]), float(lam[s + 1]),
                        float(e0[b, q]), float(e1[b, q])))
    return ent, nent, violations, checked
