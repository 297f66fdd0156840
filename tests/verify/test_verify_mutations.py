"""Every `hjplug verify` family can fail: a slightly wrong formula is reported, in its own row.

Before these rows existed, a bound that was too loose (gap bound ×2, ε·log N in its place,
Hessian bound ×0.5), a wrong normalisation constant of ũ, and a wrong ∇f / ∇u / ∂ₜu all passed.
"""

from __future__ import annotations

import math

import pytest
import torch

import hjplug
from hjplug import math as hm

real_hopf_cole = hm.hopf_cole
real_gap, real_uniform = hm.gap_bound, hm.uniform_bound
real_hbound = hm.hessian_bound
real_grad, real_field = hm.lse_grad, hm.characteristic_field
real_dt = hm.hopf_cole_time_derivative


def _wrong_normalisation(x, y, g, t, eps, metric=None, normalized=False):
    """(εd/2)·log(4πt) instead of (εd/2)·log(4πεt): still solves the PDE (a constant shift)."""
    u = real_hopf_cole(x, y, g, t, eps, metric, normalized)
    return u - eps * x.shape[-1] / 2 * math.log(eps) if normalized else u


MUTANTS = {
    "gap bound ×2 (too loose)": ("gap_bound", lambda z, eps, dim=-1: 2 * real_gap(z, eps, dim),
                                 "bounds attained"),
    "gap bound = ε·log k (too loose)": ("gap_bound", real_uniform, "bounds attained"),
    "uniform bound ×0.5": ("uniform_bound", lambda z, eps, dim=-1: real_uniform(z, eps, dim) / 2,
                           "bounds attained"),
    "Hessian bound ×0.5": ("hessian_bound",
                           lambda W, eps, tight=False: real_hbound(W, eps, tight) / 2,
                           "‖∇²f‖₂ bounds attained"),
    "ũ constant log(4πt)": ("hopf_cole", _wrong_normalisation, "ũ normalisation"),
    "∇f ×1.001": ("lse_grad", lambda *a: real_grad(*a) * 1.001, "∇f = E_π[W]"),
    "∇u ×1.001": ("characteristic_field", lambda *a, **k: real_field(*a, **k) * 1.001, "∇u ="),
    "∂ₜu ×1.001": ("hopf_cole_time_derivative", lambda *a, **k: real_dt(*a, **k) * 1.001,
                   "∇u ="),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_mutant_is_reported(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    attr, fn, row_prefix = MUTANTS[name]
    monkeypatch.setattr(hm, attr, fn)
    report = hjplug.verify(seed=7)
    failed = {r.identity for r in report.rows if not r.passed}
    assert failed and all(f.startswith(row_prefix) for f in failed), failed
    assert not report.passed


def test_new_rows_hold_on_fresh_data(seed: int) -> None:
    report = hjplug.verify(seed=seed)
    names = [r.identity for r in report.rows]
    for prefix in ("bounds attained", "‖∇²f‖₂ bounds attained", "ũ normalisation",
                   "∇f = E_π[W]", "∇u ="):
        assert any(n.startswith(prefix) for n in names), prefix
    assert report.passed, [(r.identity, r.max_error) for r in report.rows if not r.passed]
    assert torch.isfinite(torch.tensor([r.max_error for r in report.rows])).all()
