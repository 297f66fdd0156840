"""The paper's critical scale ε* = N^{−1/d} (paper-notes §5) for one attention head, in the
head's own ε units.

Convention. Head logits are z_j = q·k_j/ε. Write k_j = m + R·y_j, m the centroid of the N visible
keys and R their RMS radius about it (so the y_j have RMS radius 1). Then

    q·k_j/ε = q·m/ε + (|q|R/ε)·q̂·y_j = −|q̂ − y_j|²/(2ε′) + g_j + (terms without j),
    ε′ = ε/(|q|·R),   g_j = |y_j|²/(2ε′)   (a gauge: part of the initial data),

the heat-kernel form at unit scale with the dimensionless viscosity ε′. The paper's crossover
ε′* = N^{−1/d} therefore sits at

    ε*  = N^{−1/d}·|q|·R          (absolute, the units of ε = λ·ε₀ on the sweep's axis)
    λ*  = ε*/ε₀ = N^{−1/d}·|q|·R/ε₀   (the sweep's scale factor; ε₀ the identified ε of the head)

with d the intrinsic dimension of the key cloud, estimated by the participation ratio
d = (Σσᵢ²)²/Σσᵢ⁴ of the eigenvalues σᵢ² of the centred key covariance C = (1/N)Σ(k_j − m)(k_j − m)ᵀ
(R² = tr C = Σσᵢ²). Computed per (batch row, query) over that query's visible keys (N ≥ 2,
R > 0) and aggregated by the geometric mean of ε* (ε is read on a log axis); N, d, |q|, R are
reported as arithmetic means over the same rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hjplug.errors import HJPlugError

__all__ = ["PaperScale", "head_paper_scale", "paper_scale"]


@dataclass(frozen=True)
class PaperScale:
    """ε* = N^{−1/d}·|q|·R of one head (geometric mean over rows) and its ingredients."""

    eps_star: float  # absolute ε units
    lam_star: float  # ε*/ε₀
    eps0: float  # the head's identified ε
    n_keys: float  # mean N (visible keys)
    dim: float  # mean participation ratio d
    q_norm: float  # mean |q|
    radius: float  # mean RMS radius R of the visible keys about their centroid
    rows: int  # (batch row, query) pairs used


def _row_stats(q: Tensor, k: Tensor, vis: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per query row: (N [S], d [S], |q| [S], R [S]) in fp64. q [S, D], k [K, D], vis [S, K].

    The key geometry is computed once per distinct visibility row (one for an unmasked encoder,
    S for a causal decoder), from the explicitly centred keys.
    """
    patterns, which = torch.unique(vis, dim=0, return_inverse=True)  # [U, K], [S]
    n, dim, r = (torch.zeros(patterns.shape[0], dtype=torch.float64) for _ in range(3))
    for u, row in enumerate(patterns):
        kv = k[row]  # [N, D]
        n[u] = kv.shape[0]
        if kv.shape[0] < 2:
            continue
        kc = kv - kv.mean(0)
        sig2 = torch.linalg.eigvalsh(kc.T @ kc / kv.shape[0]).clamp_min(0)  # [D]
        tr = sig2.sum()
        r[u] = tr.sqrt()
        dim[u] = tr**2 / (sig2**2).sum() if tr > 0 else 0.0
    return n[which], dim[which], q.norm(dim=-1), r[which]


def paper_scale(q: Tensor, k: Tensor, vis: Tensor, eps0: float) -> PaperScale:
    """ε* of one head from queries q [..., S, D], keys k [..., K, D] and the visibility
    vis [..., S, K] (bool: key j is an atom for query i); leading dims are batch rows."""
    if not (isinstance(eps0, int | float) and math.isfinite(eps0) and eps0 > 0):
        raise HJPlugError(f"paper ε*: the head's ε must be finite and > 0; got {eps0!r}.")
    q64, k64 = q.detach().double(), k.detach().double()
    qs, ks, vs = (q64.reshape(-1, *q64.shape[-2:]), k64.reshape(-1, *k64.shape[-2:]),
                  vis.reshape(-1, *vis.shape[-2:]))
    parts = [_row_stats(qi, ki, vi.bool()) for qi, ki, vi in zip(qs, ks, vs, strict=True)]
    n, dim, qn, r = (torch.cat(t) for t in zip(*parts, strict=True))
    ok = (n >= 2) & (r > 0) & (qn > 0) & torch.isfinite(dim) & (dim > 0)
    if not bool(ok.any()):
        raise HJPlugError("paper ε*: no query has ≥ 2 visible keys spread over a nonzero radius "
                          "(N^{−1/d} is undefined).")
    n, dim, qn, r = n[ok], dim[ok], qn[ok], r[ok]
    log_eps = -n.log() / dim + qn.log() + r.log()  # log(N^{−1/d}·|q|·R)
    eps_star = float(log_eps.mean().exp())
    return PaperScale(eps_star, eps_star / eps0, float(eps0), float(n.mean()),
                      float(dim.mean()), float(qn.mean()), float(r.mean()), int(ok.sum()))


def head_paper_scale(model: Any, inputs: Any, layer: int, head: int) -> PaperScale:
    """paper_scale of attention block `layer`, head `head` of a Hugging Face model, from the
    queries and keys of one undeformed forward (all batch rows)."""
    from contextlib import ExitStack

    from hjplug.instrument._hf import ensure_enabled, is_hf, visible_keys
    from hjplug.instrument._tap import tap
    from hjplug.instrument.sweep import run_model
    from hjplug.integrations.huggingface.blocks import attention_blocks

    if not is_hf(model):
        raise HJPlugError("paper ε*: needs the queries and keys of a Hugging Face model's "
                          f"attention; {type(model).__name__} does not expose them.")
    blocks = list(attention_blocks(model))
    cap: dict[str, Any] = {}

    def fn(call: Any) -> None:
        B, H, Sq, _ = call.query.shape
        keys = call.keys_per_head()  # [B, H, Sk, D]
        cap["q"], cap["k"] = call.query[:, head], keys[:, head]
        cap["vis"] = visible_keys(call).expand(B, H, Sq, keys.shape[2])[:, head]
        cap["eps"] = float(call.epsilon(None)[head])

    with ExitStack() as stack:
        ensure_enabled(model, stack)
        stack.enter_context(tap({blocks[layer][1]: fn}))
        run_model(model, inputs)
    if "q" not in cap:
        raise HJPlugError(f"paper ε*: block {blocks[layer][0]} was not called by this forward.")
    return paper_scale(cap["q"], cap["k"], cap["vis"], cap["eps"])
