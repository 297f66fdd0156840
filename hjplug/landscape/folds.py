"""Fold (saddle–node) bifurcations of the attribution landscape as ε grows (paper-notes §5).

On an ascending grid of ε, find and classify the critical points of x ↦ H(π(x; ε)); a fold is an
ε where the number of minima drops — a basin merges with a neighbour as a minimum and an adjacent
maximum (1-D) or saddle (2-D) collide. The drop is bracketed on the grid, then narrowed by
bisection in log ε; the smallest |Hessian eigenvalue| among the critical points just before the
drop → 0 at the fold. A minimum can also leave the (bounded) domain through its edge as it
drifts with ε: the count drops with no partner vanishing and |λ| stays large. Such drops are
not folds; they are reported apart, as `exits`. Entropy must rise with ε at every point
(∂H/∂ε = Var_π(z)/ε³ ≥ 0): every grid point of the domain is checked, and violations are counted.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from hjplug.errors import InvalidArgumentError
from hjplug.landscape.critical import CriticalPoint, critical_points, landscape_entropy
from hjplug.landscape.domains import Domain, Path1D
from hjplug.math._checks import atoms_match

__all__ = ["Fold", "FoldScan", "scan_folds"]


@dataclass(frozen=True)
class Fold:
    """A basin merge between eps_lo and eps_hi (eps = geometric midpoint after bisection)."""

    eps: float
    eps_lo: float
    eps_hi: float
    minima_before: int
    minima_after: int
    min_abs_eigenvalue: float  # smallest |λ| among critical points at eps_lo (→ 0 at the fold)
    x: tuple[float, ...]  # the critical point carrying that eigenvalue


@dataclass(frozen=True)
class FoldScan:
    eps: tuple[float, ...]
    points: tuple[tuple[CriticalPoint, ...], ...]
    folds: tuple[Fold, ...]
    monotone_violations: int  # (point, ε-step) pairs where H decreased: must be 0
    domain: Domain
    exits: tuple[Fold, ...] = ()  # minima lost through the domain's edge (not bifurcations)

    def _count(self, kind: str) -> tuple[int, ...]:
        return tuple(sum(p.kind == kind for p in pts) for pts in self.points)

    @property
    def n_minima(self) -> tuple[int, ...]:
        return self._count("min")

    @property
    def n_saddles(self) -> tuple[int, ...]:
        return self._count("saddle")

    @property
    def n_maxima(self) -> tuple[int, ...]:
        return self._count("max")


def _n_min(points: Sequence[CriticalPoint]) -> int:
    return sum(p.kind == "min" for p in points)


def _domain_grid(domain: Domain, dtype: torch.dtype) -> Tensor:
    if isinstance(domain, Path1D):
        return torch.linspace(0.0, 1.0, domain.n_grid, dtype=dtype)[:, None]
    (a0, a1), (b0, b1) = domain.bounds()
    ga = torch.linspace(a0, a1, domain.n_grid, dtype=dtype)
    gb = torch.linspace(b0, b1, domain.n_grid, dtype=dtype)
    return torch.stack(torch.meshgrid(ga, gb, indexing="ij"), dim=-1).reshape(-1, 2)


def _vanishing_minimum(before: Sequence[CriticalPoint], after: Sequence[CriticalPoint]
                       ) -> CriticalPoint:
    """The minimum at the lower ε with no counterpart after the drop (farthest from every
    surviving minimum); among equals, the one with the smallest |λ| (closest to the fold)."""
    mins_before = [p for p in before if p.kind == "min"]
    mins_after = [torch.tensor(p.x) for p in after if p.kind == "min"]

    def key(p: CriticalPoint) -> tuple[float, float]:
        x = torch.tensor(p.x)
        gap = min((float((x - y).norm()) for y in mins_after), default=math.inf)
        return (-gap, min(abs(v) for v in p.eigenvalues))

    return min(mins_before, key=key)


def _edge_distance(p: CriticalPoint, domain: Domain) -> float:
    """Distance of p to the domain's edge in domain coordinates, per unit of extent."""
    return min(min(c - lo, hi - c) / (hi - lo)
               for c, (lo, hi) in zip(p.coords, domain.bounds(), strict=True))


def _is_exit(gone: CriticalPoint, before: Sequence[CriticalPoint], domain: Domain) -> bool:
    """The minimum left through the edge: it sits at the edge (within two grid cells) and
    closer to it than to any other critical point (at a fold its partner max / saddle is
    the nearest thing, and the two meet)."""
    edge = _edge_distance(gone, domain)
    spans = [hi - lo for lo, hi in domain.bounds()]
    partner = min((max(abs(a - c) / s for a, c, s in zip(p.coords, gone.coords, spans,
                                                          strict=True))
                   for p in before if p.kind != "min"), default=math.inf)
    return edge < 2 / (domain.n_grid - 1) and edge < partner


def _locate(W: Tensor, b: Tensor, domain: Domain, lo: float, pts_lo: tuple[CriticalPoint, ...],
            hi: float, pts_hi: tuple[CriticalPoint, ...], refine: int
            ) -> tuple[list[Fold], list[Fold]]:
    """Every fold in (lo, hi]: bisect (in log ε) to the first drop, record it, continue above it.

    Two folds inside one grid bracket are thus reported separately whenever bisection can
    separate them (`refine` halvings of the log-bracket). Drops where the vanishing minimum
    left through the domain's edge are returned apart: (folds, exits).
    """
    folds: list[Fold] = []
    exits: list[Fold] = []
    while _n_min(pts_hi) < _n_min(pts_lo):
        a, pts_a, c, pts_c = lo, pts_lo, hi, pts_hi
        for _ in range(refine):  # keep [a, c] such that the count at c is below the count at a
            mid = math.sqrt(a * c)
            pts_mid = critical_points(W, b, mid, domain)
            if _n_min(pts_mid) < _n_min(pts_a):
                c, pts_c = mid, pts_mid
            else:
                a, pts_a = mid, pts_mid
        weakest = _vanishing_minimum(pts_a, pts_c)
        (exits if _is_exit(weakest, pts_a, domain) else folds).append(Fold(
            eps=math.sqrt(a * c), eps_lo=a, eps_hi=c, minima_before=_n_min(pts_a),
            minima_after=_n_min(pts_c), min_abs_eigenvalue=min(abs(v) for v in weakest.eigenvalues),
            x=weakest.x,
        ))
        if c == hi:
            break  # the drop could not be split further within `refine` halvings
        lo, pts_lo = c, pts_c
    return folds, exits


def scan_folds(
    W: Tensor,
    b: Tensor,
    eps_grid: Sequence[float] | Tensor,
    domain: Domain,
    refine: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> FoldScan:
    """Critical points of H(π(x; ε)) over `domain` for each ε, and the folds between them."""
    where = "hjplug.landscape.scan_folds"
    W, b = W.detach().to(torch.float64), b.detach().to(torch.float64)
    atoms_match("W", W, "b", b, where)
    if W.shape[-1] != domain.dim:
        raise InvalidArgumentError("domain", f"a domain in d = {W.shape[-1]} dimensions", domain,
                                   where=where)
    eps = [float(e) for e in torch.as_tensor(eps_grid, dtype=torch.float64).reshape(-1)]
    if not eps or any(not (e > 0 and math.isfinite(e)) for e in eps):
        raise InvalidArgumentError("eps_grid", "finite values > 0", eps_grid, where=where)
    if any(e1 <= e0 for e0, e1 in itertools.pairwise(eps)):
        raise InvalidArgumentError("eps_grid", "strictly increasing values", eps_grid, where=where)

    grid = _domain_grid(domain, W.dtype)
    points: list[tuple[CriticalPoint, ...]] = []
    violations = 0
    previous_h: Tensor | None = None
    for i, e in enumerate(eps):
        points.append(critical_points(W, b, e, domain))
        h = landscape_entropy(W, b, e, grid, domain)  # [G]
        if previous_h is not None:
            violations += int((h < previous_h - 1e-12 * (1 + previous_h.abs())).sum())
        previous_h = h
        if progress is not None:
            progress(i + 1, len(eps))

    folds: list[Fold] = []
    exits: list[Fold] = []
    for i in range(len(eps) - 1):
        if _n_min(points[i + 1]) < _n_min(points[i]):
            f, x = _locate(W, b, domain, eps[i], points[i], eps[i + 1], points[i + 1], refine)
            folds.extend(f)
            exits.extend(x)
    return FoldScan(tuple(eps), tuple(points), tuple(folds), violations, domain, tuple(exits))
