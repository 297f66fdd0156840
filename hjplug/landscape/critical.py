"""Critical points of the attribution landscape h(c) = H(π(x(c); ε)) on a path or a slice.

Gradient and Hessian are closed form in the domain coordinates (hjplug.landscape._closed):
∇_c h = −E_π[(u − ū) α̃], ∇²_c h = −E_π[(1 + u − ū) α̃ α̃ᵀ] with u = z/ε, α = W·Dᵀ/ε (D the
direction matrix), evaluated for all points at once. Points are classified by the Hessian's
eigenvalues: all > 0 → min, all < 0 → max, mixed → saddle (in 1-D a "saddle" cannot occur).

1-D: sign changes of h'(s) on the grid, refined by bisection (no finite differences).
2-D: damped Newton on ∇_c h = 0 from every grid point (all starts in one batch), converged by
step size (scale-free), deduplicated.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hjplug import math as hm
from hjplug.landscape._closed import Projected
from hjplug.landscape.domains import Domain, Path1D

__all__ = ["CriticalPoint", "coordinate_gradient", "critical_points", "landscape_entropy"]


@dataclass(frozen=True)
class CriticalPoint:
    """A critical point of h: domain coordinates, input-space x, kind, H there, Hessian spectrum."""

    coords: tuple[float, ...]
    x: tuple[float, ...]
    kind: str  # "min" | "saddle" | "max"
    entropy: float
    eigenvalues: tuple[float, ...]


def _to_x(c: Tensor, origin: Tensor, dirs: Tensor) -> Tensor:
    return origin + c @ dirs  # [..., k] @ [k, d] → [..., d]


def landscape_entropy(W: Tensor, b: Tensor, eps: float, c: Tensor, domain: Domain) -> Tensor:
    """h(c) = H(π(x(c); ε)) for coordinates c [..., k].  [...]"""
    origin, dirs = domain.origin_and_directions(W.dtype)
    return hm.entropy(hm.logits(_to_x(c, origin, dirs), W, b), eps)


def coordinate_gradient(W: Tensor, b: Tensor, eps: float, c: Tensor, domain: Domain) -> Tensor:
    """∇_c h = Dᵀ · Cov_π(W, −log π)/ε (closed form).  [..., k]"""
    origin, dirs = domain.origin_and_directions(W.dtype)
    grad_x = hm.entropy_grad_x(_to_x(c, origin, dirs), W, b, eps)  # [..., d]
    return grad_x @ dirs.T


def _classify(eigs: Tensor) -> str:
    if bool((eigs > 0).all()):
        return "min"
    if bool((eigs < 0).all()):
        return "max"
    return "saddle"


def _records(W: Tensor, b: Tensor, eps: float, c: Tensor, domain: Domain, proj: Projected
             ) -> tuple[CriticalPoint, ...]:
    if c.shape[0] == 0:
        return ()
    origin, dirs = domain.origin_and_directions(W.dtype)
    eigs = torch.linalg.eigvalsh(proj.hessian(c, eps))  # [P, k]
    h = landscape_entropy(W, b, eps, c, domain)  # [P]
    x = _to_x(c, origin, dirs)  # [P, d]
    out = []
    for i in range(c.shape[0]):
        if bool((eigs[i] == 0).any()):
            continue  # exactly degenerate: no Morse type (happens only at a fold itself)
        out.append(CriticalPoint(
            coords=tuple(c[i].tolist()), x=tuple(x[i].tolist()), kind=_classify(eigs[i]),
            entropy=float(h[i]), eigenvalues=tuple(eigs[i].tolist()),
        ))
    return tuple(sorted(out, key=lambda p: p.coords))


def _bisect(f, lo: Tensor, hi: Tensor, f_lo: Tensor, steps: int = 60) -> Tensor:
    """Roots of f in [lo, hi] (one per bracket, sign(f(lo)) ≠ sign(f(hi))), batched.

    Stops early once no bracket has a representable midpoint left (further halvings would leave
    every bracket unchanged, so the result is that of all `steps`).
    """
    for _ in range(steps):
        mid = (lo + hi) / 2
        if bool(((mid == lo) | (mid == hi)).all()):
            break
        f_mid = f(mid)
        left = torch.sign(f_mid) == torch.sign(f_lo)
        lo, hi = torch.where(left, mid, lo), torch.where(left, hi, mid)
        f_lo = torch.where(left, f_mid, f_lo)
    return (lo + hi) / 2


def _critical_1d(proj: Projected, eps: float, domain: Path1D, dtype: torch.dtype) -> Tensor:
    """Roots of h' found exactly between consecutive inflections (h' is monotone in between).

    The inflections (roots of h'') are bracketed on the grid and bisected; within each monotone
    interval h' has at most one root, bisected to machine precision. A min–max pair is thus
    resolved right up to the fold, where it meets at the inflection between them.
    """
    def d1(s: Tensor) -> Tensor:  # h'(s)  [R]
        return proj.gradient(s[:, None], eps)[:, 0]

    def d2(s: Tensor) -> Tensor:  # h''(s)  [R]
        return proj.hessian(s[:, None], eps)[:, 0, 0]

    s = torch.linspace(0.0, 1.0, domain.n_grid, dtype=dtype)  # [G]
    h2 = d2(s)
    br = torch.nonzero(torch.sign(h2[:-1]) * torch.sign(h2[1:]) < 0).flatten()
    inflections = _bisect(d2, s[br], s[br + 1], h2[br]) if br.numel() else s[:0]
    ends = torch.cat([s[:1], inflections, s[-1:]])  # monotone intervals of h'
    g = d1(ends)
    br = torch.nonzero(torch.sign(g[:-1]) * torch.sign(g[1:]) < 0).flatten()
    roots = _bisect(d1, ends[br], ends[br + 1], g[br]) if br.numel() else s[:0]
    return roots.sort().values[:, None]  # [R, 1]


def _dedup(found: Tensor, spacing: Tensor, tol: float = 1e-6) -> Tensor:
    """Greedy in order: keep a point unless it lies within `tol` grid cells (max norm) of an
    earlier kept one. Vectorised: the first remaining point is kept and every remaining point
    within `tol` of it is dropped, until none remain (the same set as the sequential greedy)."""
    keep: list[Tensor] = []
    rest = found
    while rest.shape[0]:
        p = rest[0]
        keep.append(p)
        rest = rest[1:][((rest[1:] - p).abs() / spacing).amax(-1) > tol]
    return torch.stack(keep) if keep else found[:0]


def _critical_2d(proj: Projected, eps: float, domain: Domain, dtype: torch.dtype) -> Tensor:
    (a0, a1), (b0, b1) = domain.bounds()
    n = domain.n_grid
    ga = torch.linspace(a0, a1, n, dtype=dtype)
    gb = torch.linspace(b0, b1, n, dtype=dtype)
    c = torch.stack(torch.meshgrid(ga, gb, indexing="ij"), dim=-1).reshape(-1, 2)  # [P, 2]
    spacing = torch.tensor([(a1 - a0) / (n - 1), (b1 - b0) / (n - 1)], dtype=dtype)
    alive = torch.ones(c.shape[0], dtype=torch.bool)
    converged = torch.zeros_like(alive)
    for _ in range(60):
        idx = torch.nonzero(alive & ~converged).flatten()
        if idx.numel() == 0:
            break
        ci = c[idx]
        g, hess = proj.both(ci, eps)  # [P, 2], [P, 2, 2]
        step = torch.linalg.lstsq(hess, g[..., None]).solution[..., 0]  # Newton step H⁻¹g
        scale = (step.abs() / spacing).amax(-1, keepdim=True).clamp_min(1.0)  # ≤ 1 cell a step
        ci = ci - step / scale
        c[idx] = ci
        inside = (ci[:, 0] >= a0) & (ci[:, 0] <= a1) & (ci[:, 1] >= b0) & (ci[:, 1] <= b1)
        alive[idx] = inside & torch.isfinite(ci).all(-1)
        converged[idx] = inside & ((step.abs() / spacing).amax(-1) < 1e-10)
    found = c[converged & alive]
    # keep only true roots (a converged Newton step can also stall where the Hessian is singular)
    if found.shape[0]:
        g, hess = proj.both(found, eps)
        resid = torch.linalg.lstsq(hess, g[..., None]).solution[..., 0]
        found = found[(resid.abs() / spacing).amax(-1) < 1e-8]
    return _dedup(found, spacing)  # points closer than 1e-6 grid cells are one critical point


def critical_points(
    W: Tensor, b: Tensor, eps: float, domain: Domain
) -> tuple[CriticalPoint, ...]:
    """All critical points of x ↦ H(π(x; ε)) in the domain's interior, classified (fp64)."""
    W, b = W.to(torch.float64), b.to(torch.float64)
    proj = Projected.of(W, b, domain)
    if isinstance(domain, Path1D):
        c = _critical_1d(proj, eps, domain, W.dtype)
    else:
        c = _critical_2d(proj, eps, domain, W.dtype)
    return _records(W, b, eps, c, domain, proj)
