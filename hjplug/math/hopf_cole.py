"""Atomic Hopf–Cole solution of the viscous HJ equation and its inviscid (Hopf–Lax) limit.

    u_ε(x,t) = −ε · log Σ_j exp(−(g_j + |x − y_j|²_{Σ⁻¹}/(4t)) / ε)
    u_0(x,t) = min_j { g_j + |x − y_j|²_{Σ⁻¹}/(4t) }

u solves u_t + ∇uᵀΣ∇u = ε·tr(Σ∇²u) − εd/(2t); ũ = u + (εd/2)·log(4πεt) solves the viscous HJ
equation ũ_t + ∇ũᵀΣ∇ũ = ε·tr(Σ∇²ũ) exactly (a constant shift for fixed ε; for Σ = I it is the
heat-kernel normalisation). With f_ε = LSE_ε(Wx + b) and the atoms of `atoms_from_lse`:
f_ε(x) + u_ε(x,t) = xᵀΣ⁻¹x/(4t) for every x, ε, t (and at ε = 0).

Shapes: x [..., d]; y [N, d] or [..., N, d]; g [N] or [..., N]; t scalar or [...]; result [...].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hjplug.math._checks import Scalar, atoms_match, last_dims_match, metric_spd, positive
from hjplug.math.atoms import quadratic_form
from hjplug.math.lse import _shifted

__all__ = ["atom_costs", "heat_weights", "hopf_cole", "hopf_lax"]


def atom_costs(
    x: Tensor, y: Tensor, g: Tensor, t: Scalar, metric: Tensor | None = None
) -> Tensor:
    """c_j(x,t) = g_j + |x − y_j|²_{Σ⁻¹}/(4t): the cost of reaching x from atom j.  [..., N]"""
    diff = x.unsqueeze(-2) - y  # [..., N, d]
    tt = t.unsqueeze(-1) if isinstance(t, Tensor) and t.dim() > 0 else t  # [..., 1] per query
    return g + quadratic_form(diff, metric, inverse=True) / (4 * tt)


def _validate(where: str, x: Tensor, y: Tensor, g: Tensor, t: Scalar, metric: Tensor | None):
    positive("t", t, where)
    last_dims_match("x", x, "y", y, where)
    atoms_match("y", y, "g", g, where)
    metric_spd(metric, x.shape[-1], where)


def hopf_cole(
    x: Tensor,
    y: Tensor,
    g: Tensor,
    t: Scalar,
    eps: Scalar,
    metric: Tensor | None = None,
    normalized: bool = False,
) -> Tensor:
    """u_ε(x,t) = −ε·log Σ_j exp(−c_j/ε); with normalized=True add (εd/2)·log(4πεt)."""
    where = "hjplug.math.hopf_cole"
    _validate(where, x, y, g, t, metric)
    positive("eps", eps, where)
    c = atom_costs(x, y, g, t, metric)  # [..., N]
    # −ε·LSE(−c/ε), shifted by min c before dividing (no overflow for ε ≪ c; see lse._shifted);
    # written out rather than via hm.lse so that `verify` compares two separate evaluations
    m, v, e = _shifted(-c, eps, -1)  # a tensor ε: one per query
    u = -(m + e * torch.logsumexp(v, dim=-1, keepdim=True)).squeeze(-1)  # [...]
    if normalized:
        d = x.shape[-1]
        scale = 4 * math.pi * eps * t
        log_term = torch.log(scale) if isinstance(scale, Tensor) else math.log(scale)
        u = u + (eps * d / 2) * log_term
    return u


def hopf_lax(
    x: Tensor, y: Tensor, g: Tensor, t: Scalar, metric: Tensor | None = None
) -> Tensor:
    """Inviscid limit u_0(x,t) = min_j { g_j + |x − y_j|²_{Σ⁻¹}/(4t) } (Hopf–Lax formula)."""
    _validate("hjplug.math.hopf_lax", x, y, g, t, metric)
    return atom_costs(x, y, g, t, metric).amin(dim=-1)


def heat_weights(
    x: Tensor, y: Tensor, g: Tensor, t: Scalar, eps: Scalar, metric: Tensor | None = None
) -> Tensor:
    """Heat-kernel weights π_j ∝ exp(−c_j(x,t)/ε) — the same π as softmax((Wx+b)/ε).  [..., N]"""
    where = "hjplug.math.heat_weights"
    _validate(where, x, y, g, t, metric)
    positive("eps", eps, where)
    return torch.softmax(_shifted(-atom_costs(x, y, g, t, metric), eps, -1)[1], dim=-1)
