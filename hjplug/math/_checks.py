"""Argument validation shared by the math core: clear ValueErrors, never silent NaNs."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hjplug.errors import InvalidArgumentError

Scalar = float | int | Tensor


def positive(name: str, value: Scalar, where: str) -> None:
    """Require value > 0 and finite (a float or a tensor of them, e.g. one ε per head)."""
    if isinstance(value, Tensor):
        ok = bool(torch.isfinite(value).all()) and bool((value > 0).all())
    else:
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value) and value > 0)
    if not ok:
        raise InvalidArgumentError(
            name, "a finite number > 0", value, where=where,
            hint="Use a small positive value (e.g. 1e-3) for the near-tropical regime, "
            "or the *_tropical / hopf_lax functions for the ε → 0 limit itself.",
        )


def last_dims_match(name_a: str, a: Tensor, name_b: str, b: Tensor, where: str) -> None:
    """Require a.shape[-1] == b.shape[-1] (the feature dimension d)."""
    if a.shape[-1] != b.shape[-1]:
        raise InvalidArgumentError(
            name_b, f"a tensor whose last dimension matches {name_a}'s d = {a.shape[-1]}", b,
            where=where,
        )


def atoms_match(name_w: str, w: Tensor, name_b: str, b: Tensor, where: str) -> None:
    """Require b.shape[-1] == w.shape[-2] (one offset per atom)."""
    if w.dim() < 2 or b.shape[-1] != w.shape[-2]:
        raise InvalidArgumentError(
            name_b, f"one value per atom: last dimension N = {w.shape[-2] if w.dim() >= 2 else '?'}"
            f" (from {name_w} of shape {tuple(w.shape)})", b, where=where,
        )


def metric_spd(metric: Tensor | None, d: int, where: str) -> None:
    """Require a symmetric positive definite d×d metric Σ (or None for the identity)."""
    if metric is None:
        return
    if metric.shape != (d, d):
        raise InvalidArgumentError("metric", f"a {d}×{d} matrix Σ", metric, where=where)
    sym_err = float((metric - metric.T).abs().max())
    scale = float(metric.abs().max()) or 1.0
    if sym_err > 1e-6 * scale:
        raise InvalidArgumentError(
            "metric", "symmetric (Σ = Σᵀ)", f"a matrix with max |Σ − Σᵀ| = {sym_err:.3g}",
            where=where,
        )
    if float(torch.linalg.eigvalsh(metric.double()).min()) <= 0:
        raise InvalidArgumentError(
            "metric", "positive definite (all eigenvalues > 0)", "a matrix with eigenvalue ≤ 0",
            where=where,
        )
