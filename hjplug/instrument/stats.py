"""Per-row ε-statistics from logits, top-k weights and atoms (pure torch; no model access).

For one row of logits z (already divided by ε; −inf = removed atom), π = softmax(z):

    lse  = log Σ_j e^{z_j}        H = lse − E_π[z] = −Σ π_j log π_j        k = #{j : z_j > −∞}
    H/log k  (NaN where k ≤ 1)     gap Δ/ε = z_(1) − z_(2) = log π_(1) − log π_(2)
    curvature of the HJ value f(x) = ε·LSE((W x + b)/ε) in x:  ‖∇²f‖₂ = ‖Cov_π(W)‖₂/ε
                                   ≤ max_j ‖W_j‖²/ε                          (paper-notes §3)
Rows whose statistics are NaN are flagged (`nan`), never mixed into means. Rows with no visible
atom (k = 0): lse = −∞ (the empty sum), H, H/log k and curvature undefined (NaN), not flagged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hjplug.kernels.reference.topk import topk_weights

__all__ = ["covariance_norm", "empty_undefined", "gap_from_topk", "logits_stats", "nan_flags",
           "normalized", "safe_mean"]

_CHUNK = 1 << 22  # elements of the centred atoms held at once in covariance_norm


def empty_undefined(t: Tensor, keys: Tensor) -> Tensor:
    """t with NaN where k = 0: a row with no visible key has no distribution, so its entropy (or
    any statistic of π) is undefined — not 0 (the kernels' fill value)."""
    return torch.where(keys == 0, torch.full_like(t, math.nan), t)


def nan_flags(lse: Tensor, entropy: Tensor, keys: Tensor) -> Tensor:
    """Rows whose statistics are not trustworthy: NaN, or lse = −inf although keys are visible
    (a NaN score a backend reported as an empty row). Rows with k = 0 are empty, not NaN."""
    return (keys > 0) & (torch.isnan(lse) | torch.isnan(entropy) | torch.isneginf(lse))


def normalized(entropy: Tensor, keys: Tensor) -> Tensor:
    """H/log k, NaN where k ≤ 1 (a single atom has no entropy to normalise)."""
    kf = keys.to(entropy.dtype).clamp_min(2)
    return torch.where(keys > 1, entropy / kf.log(), torch.full_like(entropy, math.nan))


def gap_from_topk(tw: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
    """(Δ/ε, (Δ/ε)/log k) from the two largest weights tw [..., ≥2]; NaN where k ≤ 1.

    Δ/ε = log π_(1) − log π_(2); +inf where π_(2) underflows to 0 although k ≥ 2.
    """
    t1, t2 = tw[..., 0], tw[..., 1]
    g = t1.log() - t2.log()  # +inf where t2 = 0
    g = torch.where(keys > 1, g, torch.full_like(g, math.nan))
    ratio = g / keys.to(g.dtype).clamp_min(2).log()
    return g, torch.where(keys > 1, ratio, torch.full_like(g, math.nan))


def logits_stats(z: Tensor, topk: int = 0) -> dict[str, Tensor]:
    """Statistics of π = softmax(z) over the last dim of z [..., N] (−inf, or ≤ −10³⁰ as the
    finfo.min stand-ins of float masks: removed atom; `is_removed`).

    Returns lse, entropy, normalized_entropy, keys, nan [...] and, when topk > 0,
    topk_weights / topk_indices [..., topk] (weight 0, index −1 past the visible atoms).
    Computed in fp64 when z is fp64, else fp32; rows with no visible atom: lse = −inf, H = NaN
    (undefined), not flagged.
    """
    from hjplug.modules.attention_stats import removed_to_inf

    ct = torch.float64 if z.dtype == torch.float64 else torch.float32
    z = removed_to_inf(z).to(ct)  # finfo.min stand-ins of float masks: removed, not atoms
    keys = (z != float("-inf")).sum(-1)  # [...]; NaN logits count as visible (and flag the row)
    empty = (keys == 0).unsqueeze(-1)
    zs = z.masked_fill(empty, 0.0)
    lse = torch.logsumexp(zs, dim=-1)  # [...]
    logp = zs - lse.unsqueeze(-1)
    p = logp.exp().masked_fill(empty, 0.0)
    ent = -(p * logp.clamp_min(-1.0e4)).sum(-1)  # 0·(−inf) never formed
    lse = lse.masked_fill(empty.squeeze(-1), float("-inf"))
    ent = empty_undefined(ent, keys)
    out = {"lse": lse, "entropy": ent, "normalized_entropy": normalized(ent, keys),
           "keys": keys, "nan": nan_flags(lse, ent, keys)}
    if topk:
        out["topk_weights"], out["topk_indices"] = topk_weights(p, topk)
    return out


def covariance_norm(p: Tensor, atoms: Tensor, visible: Tensor, eps: Tensor
                    ) -> tuple[Tensor, Tensor]:
    """(‖Cov_π(W)‖₂/ε, max_{j visible} ‖W_j‖²/ε) per row.

    p [G, R, N] Gibbs weights; atoms [G, N, d] (W_j per group g, e.g. the keys of one head);
    visible [G, R, N] bool; eps [G] (ε of the group). Returns two [G, R] tensors, fp64.
    Cov_π(W) = Σ_j π_j (W_j − μ)(W_j − μ)ᵀ with μ = Σ_j π_j W_j, in fp64 and centred (no
    cancellation); the largest eigenvalue by eigh. NaN rows stay NaN; ε = 0 rows and rows with no
    visible atom (no distribution) give NaN.
    """
    G, R, N = p.shape
    d = atoms.shape[-1]
    p64, w64 = p.to(torch.float64), atoms.to(torch.float64)
    bad = torch.isnan(p64).any(-1)  # [G, R]
    p64 = torch.nan_to_num(p64, nan=0.0)
    lam = torch.empty(G, R, dtype=torch.float64, device=p.device)
    step = max(1, _CHUNK // max(1, G * N * d))
    for r0 in range(0, R, step):
        pc = p64[:, r0:r0 + step]  # [G, r, N]
        mu = pc @ w64  # [G, r, d]
        cen = w64.unsqueeze(1) - mu.unsqueeze(2)  # [G, r, N, d]
        cov = (cen * pc.unsqueeze(-1)).transpose(-1, -2) @ cen  # [G, r, d, d]
        lam[:, r0:r0 + step] = torch.linalg.eigvalsh(cov)[..., -1].clamp_min(0.0)
    sq = (w64 * w64).sum(-1)  # [G, N]
    bound = torch.where(visible, sq.unsqueeze(1), torch.zeros_like(sq).unsqueeze(1)).amax(-1)
    e = eps.to(torch.float64).view(G, 1)
    pos = e > 0
    e_safe = torch.where(pos, e, torch.ones_like(e))
    curv = torch.where(pos, lam / e_safe, torch.full_like(lam, math.nan))
    bnd = torch.where(pos, bound / e_safe, torch.full_like(bound, math.nan))
    none = ~visible.any(-1)  # [G, R]
    return curv.masked_fill(bad | none, math.nan), bnd.masked_fill(none, math.nan)


def safe_mean(x: Tensor, valid: Tensor) -> float:
    """Mean of x over `valid` entries (NaN when there are none)."""
    n = int(valid.sum())
    return float(torch.where(valid, x, torch.zeros_like(x)).sum() / n) if n else math.nan
