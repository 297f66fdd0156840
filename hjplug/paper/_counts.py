"""Independent critical-point counts for experiment 6: H values on dense grids (+ descent).

    1-D: interior local minima / maxima of H sampled on a dense grid (sign changes of ΔH)
    2-D: grid points below their 8 neighbours, each descended (Newton/steepest, autograd of
         hm.entropy, capped steps, Armijo) and grouped; flat minima (λ_min < FLAT) not counted
None of this uses the closed-form ∇H or the Newton search of hjplug.landscape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from hjplug import math as hm
from hjplug.paper._common import F64

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.landscape import Slice2D

X_RANGE = (-4.0, 4.0)
FLAT = 1e-4  # 2-D dense count: minima with smallest Hessian eigenvalue below this are flat
MARGIN = 0.5  # 2-D: the slice covers the atoms plus this margin, in the diagonal frame

__all__ = ["FLAT", "MARGIN", "X_RANGE", "cluster_slice", "grid_extrema_1d", "grid_minima_2d",
           "slice_points"]


def grid_extrema_1d(W: Tensor, b: Tensor, eps: float, n: int = 8001) -> tuple[int, int]:
    """Interior local minima / maxima of H sampled at n points of [−4, 4] (sign changes of ΔH)."""
    x = torch.linspace(*X_RANGE, n, dtype=F64).unsqueeze(1)  # [n, 1]
    s = torch.sign(torch.diff(hm.entropy(hm.logits(x, W, b), eps)))  # [n-1]
    s = s[s != 0]
    return int(((s[:-1] < 0) & (s[1:] > 0)).sum()), int(((s[:-1] > 0) & (s[1:] < 0)).sum())


def cluster_slice(y: Tensor, n_grid: int) -> Slice2D:
    """The rectangle around the atoms in the diagonal frame u = (1, 1)/√2, v = (−1, 1)/√2:
    a ∈ [min a_j − 0.5, max a_j + 0.5], b likewise (a_j = y_j·u, b_j = y_j·v). Regions far from
    every atom (H ≈ 0 to round-off, where spurious flat critical points live) stay outside."""
    from hjplug.landscape import Slice2D

    r = 2**-0.5
    u, v = torch.tensor([r, r], dtype=F64), torch.tensor([-r, r], dtype=F64)
    a, c = y @ u, y @ v  # [N], [N]
    extent = (float(a.min()) - MARGIN, float(a.max()) + MARGIN,
              float(c.min()) - MARGIN, float(c.max()) + MARGIN)
    return Slice2D((0.0, 0.0), tuple(u.tolist()), tuple(v.tolist()), extent, n_grid=n_grid)


def slice_points(domain: Slice2D, n: int) -> Tensor:
    """n×n grid of the slice (a major, b minor), in input space.  [n², d]"""
    a0, a1, b0, b1 = domain.extent
    ab = torch.cartesian_prod(torch.linspace(a0, a1, n, dtype=F64),
                              torch.linspace(b0, b1, n, dtype=F64))  # [n², 2]
    origin, dirs = domain.origin_and_directions(F64)
    return origin + ab @ dirs


def _descend(W: Tensor, b: Tensor, eps: float, x0: Tensor, cap: float = 0.01,
             iters: int = 300) -> tuple[Tensor, bool]:
    """Monotone descent of h(x) = H(π(x; ε)) from x0 [2]: Newton step where the (autograd)
    Hessian is positive definite, else steepest descent; steps capped at `cap` (so a descent
    never jumps across a ridge) with Armijo backtracking. Uses autograd of hm.entropy, not the
    closed-form ∇H of the landscape scan. Returns (x [2], converged: |∇h| ≤ 1e-6)."""
    def h(v: Tensor) -> Tensor:
        return hm.entropy(hm.logits(v, W, b), eps)

    x = x0.clone()
    for _ in range(iters):
        grad = torch.func.grad(h)(x)
        gnorm = float(grad.norm())
        if gnorm <= 1e-6:
            return x, True
        hess = torch.func.jacrev(torch.func.grad(h))(x)  # reverse-over-reverse
        d = -grad
        if bool((torch.linalg.eigvalsh(hess) > 0).all()):
            d = -torch.linalg.solve(hess, grad)
        if float(d @ grad) >= 0:
            d = -grad
        d = d * min(1.0, cap / float(d.norm()))
        h0, slope, t = float(h(x)), float(d @ grad), 1.0
        while t > 1e-12 and float(h(x + t * d)) > h0 + 1e-4 * t * slope:
            t *= 0.5
        if t <= 1e-12:  # no further decrease representable
            return x, gnorm <= 1e-5
        x = x + t * d
    return x, False


def grid_minima_2d(W: Tensor, b: Tensor, eps: float, domain: Slice2D, n: int = 201,
                   merge_radius: float = 1e-3) -> int:
    """Minima of H in the slice, found independently of the scan: every interior grid point
    below its 8 neighbours (n×n grid) is descended with L-BFGS (autograd); the end points still
    inside the slice are grouped (≤ merge_radius apart) and counted; a descent that does not
    converge within its budget is not counted. The descent removes lattice artefacts (a grid
    point between two sharp ridges can look like a minimum)."""
    x = slice_points(domain, n)  # [n², 2]
    h = hm.entropy(hm.logits(x, W, b), eps).reshape(1, 1, n, n)
    pad = F.pad(h, (1, 1, 1, 1), value=float("inf"))
    neigh = torch.stack([pad[..., 1 + di:n + 1 + di, 1 + dj:n + 1 + dj]
                         for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)])
    is_min = (h < neigh).all(0)[0, 0]  # [n, n]
    is_min[0, :] = is_min[-1, :] = is_min[:, 0] = is_min[:, -1] = False
    starts = x[is_min.reshape(-1)]  # [M, 2]
    origin, dirs = domain.origin_and_directions(F64)
    a0, a1, b0, b1 = domain.extent
    ends = []
    for x0 in starts:
        xe, converged = _descend(W, b, eps, x0)
        ab = torch.linalg.solve(dirs @ dirs.T, dirs @ (xe - origin))  # slice coordinates [2]
        if not (converged and a0 < ab[0] < a1 and b0 < ab[1] < b1):
            continue
        lam = torch.linalg.eigvalsh(torch.func.jacrev(torch.func.grad(
            lambda v: hm.entropy(hm.logits(v, W, b), eps)))(xe))  # [2]
        if float(lam.min()) >= FLAT:
            ends.append(xe)
    groups: list[Tensor] = []
    for xe in ends:
        if all(float((xe - q).norm()) > merge_radius for q in groups):
            groups.append(xe)
    return len(groups)
