"""Experiment 6 — fold bifurcations of the attribution landscape x ↦ H(π(x; ε)).

1-D: atoms y = (−2.6, −1.5, −0.4, 0.7, 1.7, 2.7), g = 0, weights π_j ∝ exp(−(x − y_j)²/(2ε))
(t = 1/2: W, b = lse_from_atoms(y, g, 1/2)), x ∈ [−4, 4]. 2-D: the two clusters of experiment 5
(g = 0 / 1, t = 1) on the rectangle around the atoms in the diagonal frame (margin 0.5).

On a log grid of ε ∈ [0.02, 3], `hjplug.landscape.scan_folds` finds and classifies the critical
points of H (min / saddle / max by the Hessian of H); a fold is an ε where the number of minima
drops (a minimum and a maximum (1-D) or saddle (2-D) collide: two basins merge), bisected in
log ε. A grid bracket in which more than one basin vanished is split where the dense-grid count
drops and each piece re-scanned, so that every merge is listed with its own ε. At a fold the
smallest |Hessian eigenvalue| → 0: it is compared with the same point's value on the grid.

Independent evaluation: at every ε the minima (and, in 1-D, maxima) are also counted as discrete
local extrema of H sampled on a dense grid (H values only, no derivatives). In 2-D only minima
enter the verdict: saddles and maxima are reported (Newton from a grid of starts can miss
unstable points, and ridges of H cross the square's boundary, so no index sum is enforced).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hjplug import math as hm
from hjplug.paper._common import (
    F64,
    RunConfig,
    entropy_monotonicity,
    log_grid,
)
from hjplug.paper._counts import (
    FLAT,
    X_RANGE,
    cluster_slice,
    grid_extrema_1d,
    grid_minima_2d,
    slice_points,
)
from hjplug.paper._fold_figure import fold_figure
from hjplug.paper.exp5_phase import cluster_atoms
from hjplug.paper.records import ExperimentResult, Verdict

if TYPE_CHECKING:  # pragma: no cover
    from hjplug.landscape import Fold, FoldScan
    from hjplug.landscape.domains import Domain

NUMBER, NAME, TITLE = 6, "folds", "Fold bifurcations of x ↦ H(π(x; ε)) in 1-D and 2-D"
ATOMS_1D = (-2.6, -1.5, -0.4, 0.7, 1.7, 2.7)
T_1D, T_2D = 0.5, 1.0
EPS_RANGE = (0.02, 3.0)


@dataclass(frozen=True)
class Merge:
    """One basin merge: ε (bracket [eps_lo, eps_hi]), minima before → after, and the vanishing
    minimum at eps_lo (position x, smallest |Hessian eigenvalue| of H there) beside the same
    minimum's smallest |λ| on the last grid ε before the merge: at a fold |λ| → 0."""

    eps: float
    eps_lo: float
    eps_hi: float
    minima_before: int
    minima_after: int
    min_abs_eigenvalue: float
    x: tuple[float, ...]
    grid_eps: float = float("nan")
    grid_abs_eigenvalue: float = float("nan")


@dataclass(frozen=True)
class FoldPanel:
    """One landscape: counts per ε from the scan and from the dense grid, merges, checks."""

    label: str
    dim: int
    eps: tuple[float, ...]
    n_minima: tuple[int, ...]
    n_saddles: tuple[int, ...]
    n_maxima: tuple[int, ...]
    grid_minima: tuple[int, ...]
    grid_maxima: tuple[int, ...] | None  # 1-D only
    merges: tuple[Merge, ...]
    monotone_violations: int
    basins: tuple[int, ...] = ()  # scan minima compared with the dense count (2-D: non-flat)

    def compared_minima(self) -> tuple[int, ...]:
        return self.basins or self.n_minima


def problem_1d() -> tuple[Tensor, Tensor, Tensor]:
    """(W [6, 1], b [6], y [6, 1]) with π_j ∝ exp(−(x − y_j)²/(2ε)) (t = 1/2, g = 0)."""
    y = torch.tensor(ATOMS_1D, dtype=F64).unsqueeze(1)  # [6, 1]
    W, b = hm.lse_from_atoms(y, torch.zeros(len(ATOMS_1D), dtype=F64), T_1D)
    return W, b, y


def problem_2d(cfg: RunConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(W [16, 2], b [16], y, g) of experiment 5's clusters at t = 1."""
    y, g = cluster_atoms(cfg)
    W, b = hm.lse_from_atoms(y, g, T_2D)
    return W, b, y, g


def _split_bracket(count: Callable[[float], int], lo: float, hi: float, n: int = 12,
                   depth: int = 6) -> list[tuple[float, float]]:
    """Sub-brackets of [lo, hi] across which the dense-grid minima count drops by one each:
    n log-spaced ε per level, pieces that still drop by > 1 subdivided again (≤ depth levels)."""
    grid = log_grid(lo, hi, n).tolist()
    counts = [count(e) for e in grid]
    out: list[tuple[float, float]] = []
    for (a, b), (ca, cb) in zip(pairwise(grid), pairwise(counts), strict=True):
        if ca - cb > 1 and depth > 1:
            out.extend(_split_bracket(count, a, b, n, depth - 1))
        elif cb < ca:
            out.append((a, b))
    return out


def _dist2(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum((u - v) ** 2 for u, v in zip(a, b, strict=True))


def _merges(W: Tensor, b: Tensor, scan: FoldScan, domain: Domain, refine: int,
            count: Callable[[float], int]) -> list[Merge]:
    """Scan folds → merges. A fold bracket that lost > 1 minimum is split where the dense-grid
    count drops, and each piece is re-scanned (scan_folds on its two ends, bisection inside).

    The vanishing basin is the minimum at eps_lo farthest from every minimum at eps_hi; its
    smallest |λ| is recorded beside that of the nearest minimum on the last grid ε before."""
    from hjplug.landscape import critical_points, scan_folds

    eps = list(scan.eps)

    def merge(f: Fold) -> Merge:
        lo = [p for p in critical_points(W, b, f.eps_lo, domain) if p.kind == "min"]
        hi = [p for p in critical_points(W, b, f.eps_hi, domain) if p.kind == "min"]
        if not lo:  # the scan's own weakest point is all there is
            return Merge(f.eps, f.eps_lo, f.eps_hi, f.minima_before, f.minima_after,
                         f.min_abs_eigenvalue, tuple(f.x))
        gone = max(lo, key=lambda p: min((_dist2(p.x, q.x) for q in hi), default=float("inf")))
        k = max(i for i, e in enumerate(eps) if e <= f.eps_lo)
        grid_min = [p for p in scan.points[k] if p.kind == "min"]
        near = min(grid_min, key=lambda p: _dist2(p.x, gone.x), default=None)
        lam = min(abs(v) for v in near.eigenvalues) if near is not None else float("nan")
        return Merge(f.eps, f.eps_lo, f.eps_hi, f.minima_before, f.minima_after,
                     min(abs(v) for v in gone.eigenvalues), tuple(gone.x), eps[k], lam)

    out: list[Merge] = []
    for f in scan.folds:
        drop = f.minima_before - f.minima_after
        if drop > 1:
            pieces = _split_bracket(count, f.eps_lo, f.eps_hi)  # the fold's own bracket
            found = [g for a, c in pieces
                     for g in scan_folds(W, b, (a, c), domain, refine=refine).folds]
            if len(pieces) > 1 and sum(g.minima_before - g.minima_after for g in found) == drop:
                out.extend(merge(g) for g in found)
                continue
        out.append(merge(f))
    return out


def verdict(panels: tuple[FoldPanel, ...]) -> Verdict:
    """Pass iff, for every landscape:
    (a) the number of minima never increases with ε (basins only merge);
    (b) it equals the independent dense-grid count at every ε (1-D: maxima too; 2-D: minima
        whose smallest Hessian eigenvalue is ≥ FLAT, on both sides);
    (c) in 1-D, n_max − n_min = 1 at every ε (critical points vanish in min–max pairs: folds);
    (d) the listed merges account for every lost minimum, one basin each;
    (e) at each merge bracketed to ≤ 1e-3 relative width (past the grid ε before it), the
        vanishing minimum's smallest |λ| is below its value on that grid ε (|λ| → 0 at a fold);
    (f) no entropy decrease in ε.
    2-D saddle/maximum counts are reported only: Newton from a grid of starts can miss unstable
    points, and ridges of H cross the slice's boundary, so no index sum is enforced."""
    problems: list[str] = []
    for p in panels:
        nm = p.n_minima
        if any(b > a for a, b in pairwise(nm)):
            problems.append(f"{p.label}: minima count increases with ε")
        bad = [e for e, a, g in zip(p.eps, p.compared_minima(), p.grid_minima, strict=True)
               if a != g]
        if p.grid_maxima is not None:
            bad += [e for e, a, g in zip(p.eps, p.n_maxima, p.grid_maxima, strict=True) if a != g]
        if bad:
            problems.append(f"{p.label}: scan ≠ dense-grid count at ε = "
                            + ", ".join(f"{e:.3g}" for e in sorted(set(bad))))
        if p.dim == 1 and any(mx - mn != 1 for mn, mx in zip(nm, p.n_maxima, strict=True)):
            problems.append(f"{p.label}: n_max − n_min ≠ 1 (critical points not in fold pairs)")
        lost = nm[0] - nm[-1] if nm else 0
        listed = sum(m.minima_before - m.minima_after for m in p.merges)
        if listed != lost:
            problems.append(f"{p.label}: merges list {listed} lost minima, counts lose {lost}")
        if any(m.minima_before - m.minima_after != 1 for m in p.merges):
            problems.append(f"{p.label}: a listed merge loses more than one basin (unresolved)")
        if any(m.eps_lo > m.grid_eps and m.eps_hi - m.eps_lo <= 1e-3 * m.eps
               and not m.min_abs_eigenvalue < m.grid_abs_eigenvalue for m in p.merges):
            problems.append(f"{p.label}: |λ| does not shrink toward a merge")
        if p.monotone_violations:
            problems.append(f"{p.label}: {p.monotone_violations} entropy decreases in ε")
    detail = "; ".join(
        f"{p.label}: minima {p.n_minima[0]} → {p.n_minima[-1]}, merges at ε = "
        + (", ".join(f"{m.eps:.4g}" for m in p.merges) or "none") for p in panels)
    return Verdict(
        passed=bool(panels) and not problems,
        criterion="minima never increase with ε; scan = independent dense-grid count at every ε; "
        "1-D n_max − n_min = 1; every lost minimum is a listed merge of one basin; "
        "|λ| shrinks toward each merge; no entropy decrease",
        detail=detail + (f" — failed: {'; '.join(problems)}" if problems else ""),
    )


def run(cfg: RunConfig) -> ExperimentResult:
    from hjplug.landscape import Path1D, scan_folds

    start = time.perf_counter()
    n1, r1, n2, r2, grid2 = (10, 3, 4, 3, 31) if cfg.quick else (48, 16, 16, 12, 41)
    W1, b1, y1 = problem_1d()
    path = Path1D((X_RANGE[0],), (X_RANGE[1],), n_grid=801)
    eps1 = log_grid(*EPS_RANGE, n1)
    scan1 = scan_folds(W1, b1, eps1, path, refine=r1)
    ext1 = [grid_extrema_1d(W1, b1, e) for e in scan1.eps]

    def count1(e: float) -> int:
        return grid_extrema_1d(W1, b1, e)[0]

    panel1 = FoldPanel("1-D", 1, scan1.eps, scan1.n_minima, scan1.n_saddles, scan1.n_maxima,
                       tuple(a for a, _ in ext1), tuple(m for _, m in ext1),
                       tuple(_merges(W1, b1, scan1, path, r1, count1)), scan1.monotone_violations)

    W2, b2, y2, _ = problem_2d(cfg)
    rect = cluster_slice(y2, grid2)
    scan2 = scan_folds(W2, b2, log_grid(*EPS_RANGE, n2), rect, refine=r2)

    def count2(e: float) -> int:
        return grid_minima_2d(W2, b2, e, rect)

    basins = tuple(sum(p.kind == "min" and min(p.eigenvalues) >= FLAT for p in pts)
                   for pts in scan2.points)
    panel2 = FoldPanel("2-D", 2, scan2.eps, scan2.n_minima, scan2.n_saddles, scan2.n_maxima,
                       tuple(count2(e) for e in scan2.eps), None,
                       tuple(_merges(W2, b2, scan2, rect, r2, count2)), scan2.monotone_violations,
                       basins)
    panels = (panel1, panel2)

    xs = torch.linspace(*X_RANGE, 401, dtype=F64).unsqueeze(1)
    eps_check = log_grid(*EPS_RANGE, 61)
    check = entropy_monotonicity(W1, b1, xs, eps_check).merged(
        entropy_monotonicity(W2, b2, slice_points(rect, 21), eps_check))

    figure = fold_figure(cfg, panels, (scan1, scan2), W1, b1, y1, y2)
    rows = []
    for p in panels:
        for m in p.merges:
            rows.append((p.label, f"{m.eps:.6g}", f"{(m.eps_hi - m.eps_lo) / m.eps:.1e}",
                         f"{m.minima_before} → {m.minima_after}",
                         f"{m.min_abs_eigenvalue:.2e} (ε={m.grid_eps:.3g}: "
                         f"{m.grid_abs_eigenvalue:.2e})",
                         "(" + ", ".join(f"{v:.3f}" for v in m.x) + ")"))
        counts = "; ".join(f"ε = {p.eps[k]:g}: {p.n_minima[k]}/{p.n_saddles[k]}/{p.n_maxima[k]}"
                           for k in (0, -1)) + " (min/saddle/max)"
        rows.append((p.label, "—", f"{len(p.eps)} ε in [{p.eps[0]:g}, {p.eps[-1]:g}]", counts,
                     "", ""))
    notes = tuple(
        f"{p.label}: minima per ε (scan) {list(p.n_minima)}"
        + (f", non-flat (λ_min ≥ {FLAT:g}) {list(p.basins)}" if p.basins else "")
        + f"; {'dense grid' if p.dim == 1 else 'dense grid + descent'} {list(p.grid_minima)}"
        for p in panels)
    return ExperimentResult(
        number=NUMBER, name=NAME, title=TITLE,
        columns=("landscape", "merge ε", "bracket rel. width", "minima before → after",
                 "vanishing min: |λ| at merge (grid ε before)", "x of vanishing minimum"),
        rows=tuple(rows), figure=str(figure), verdict=verdict(panels), entropy_check=check,
        seconds=time.perf_counter() - start, data=panels, notes=notes,
    )
