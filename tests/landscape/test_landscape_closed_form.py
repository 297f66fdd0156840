"""The closed-form landscape derivatives and the search shortcuts give what the slow references
give: autograd Hessians, the sequential greedy deduplication, the full-length bisection."""

from __future__ import annotations

import pytest
import torch

from hjplug.landscape import Path1D, Slice2D, landscape_entropy
from hjplug.landscape._closed import Projected
from hjplug.landscape.critical import _bisect, _dedup

F64 = torch.float64


@pytest.mark.parametrize("eps", [0.03, 0.4, 5.0])
def test_closed_form_matches_autograd_of_h(seed: int, eps: float) -> None:
    """∇h and ∇²h of h(c) = H(π(x(c))) by autograd on H itself (an independent evaluation)."""
    gen = torch.Generator().manual_seed(seed)
    W, b = torch.randn(9, 3, generator=gen, dtype=F64), torch.randn(9, generator=gen, dtype=F64)
    for dom in (Slice2D([0.1, -0.2, 0.3], [1.0, 0.3, 0.0], [-0.2, 1.0, 0.5], (-2, 2, -2, 2)),
                Path1D([-1.0, 0.5, 0.0], [1.5, -0.5, 2.0])):
        k = len(dom.bounds())
        c = torch.randn(6, k, generator=gen, dtype=F64)

        def h(ci: torch.Tensor, dom=dom) -> torch.Tensor:
            return landscape_entropy(W, b, eps, ci[None], dom)[0]

        grad = torch.stack([torch.func.grad(h)(ci) for ci in c])
        hess = torch.stack([torch.func.hessian(h)(ci) for ci in c])
        proj = Projected.of(W, b, dom)
        scale = 1 + hess.abs().amax()
        torch.testing.assert_close(proj.gradient(c, eps), grad, atol=1e-10 * scale, rtol=1e-9)
        torch.testing.assert_close(proj.hessian(c, eps), hess, atol=1e-10 * scale, rtol=1e-9)
        g2, h2 = proj.both(c, eps)
        assert torch.equal(g2, proj.gradient(c, eps)) and torch.equal(h2, proj.hessian(c, eps))


def test_masked_atoms_contribute_nothing() -> None:
    W = torch.tensor([[1.0], [-1.0], [3.0]], dtype=F64)
    b = torch.tensor([0.0, 0.2, float("-inf")], dtype=F64)
    dom = Path1D([-1.0], [1.0])
    c = torch.linspace(0, 1, 5, dtype=F64)[:, None]
    full, kept = Projected.of(W, b, dom), Projected.of(W[:2], b[:2], dom)
    torch.testing.assert_close(full.gradient(c, 0.3), kept.gradient(c, 0.3))
    torch.testing.assert_close(full.hessian(c, 0.3), kept.hessian(c, 0.3))


def _greedy(found: torch.Tensor, spacing: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    keep: list[torch.Tensor] = []
    for p in found:
        if all(bool(((p - q).abs() / spacing).amax() > tol) for q in keep):
            keep.append(p)
    return torch.stack(keep) if keep else found[:0]


def test_dedup_is_the_sequential_greedy(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(5, 2, generator=gen, dtype=F64)
    # clusters of near-duplicates (chains: a point can be close to a dropped one only)
    pts = centres[torch.randint(0, 5, (200,), generator=gen)]
    pts = pts + 1.5e-6 * torch.rand(200, 2, generator=gen, dtype=F64)
    spacing = torch.tensor([1.0, 1.0], dtype=F64)
    assert torch.equal(_dedup(pts, spacing), _greedy(pts, spacing))
    assert _dedup(pts[:0], spacing).shape == (0, 2)


def test_bisect_early_exit_is_exact() -> None:
    def f(s: torch.Tensor) -> torch.Tensor:
        return torch.cos(7 * s) - 0.3

    lo = torch.tensor([0.0, 0.5], dtype=F64)
    hi = torch.tensor([0.3, 1.0], dtype=F64)
    ref_lo, ref_hi, f_lo = lo.clone(), hi.clone(), f(lo)
    for _ in range(200):  # the plain loop, run far past convergence
        mid = (ref_lo + ref_hi) / 2
        fm = f(mid)
        left = torch.sign(fm) == torch.sign(f_lo)
        ref_lo, ref_hi = torch.where(left, mid, ref_lo), torch.where(left, ref_hi, mid)
        f_lo = torch.where(left, fm, f_lo)
    assert torch.equal(_bisect(f, lo, hi, f(lo)), (ref_lo + ref_hi) / 2)
