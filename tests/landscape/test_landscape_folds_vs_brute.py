"""Folds against brute force: each reported fold is a minimum that really vanishes (a sign change
of h' that disappears, with a max beside it), at the ε a plain dense-grid bisection finds; and a
minimum that merely drifts out of the domain through its edge is not reported as a fold."""

from __future__ import annotations

import math

import torch

from hjplug import math as hm
from hjplug.landscape import Path1D, Slice2D, critical_points, landscape_entropy, scan_folds

F64 = torch.float64
ATOMS_1D = torch.tensor([-2.6, -1.5, -0.4, 0.7, 1.7, 2.7], dtype=F64)[:, None]
GRID = torch.logspace(math.log10(0.02), math.log10(3.0), 40)


def _layer_1d() -> tuple[torch.Tensor, torch.Tensor]:
    return hm.lse_from_atoms(ATOMS_1D, torch.zeros(6, dtype=F64), t=0.5)


def _minima_near(W, b, eps: float, x: float, half: float = 0.3, n: int = 60001) -> int:
    """Independent: discrete local minima of H (plain evaluations) in [x − half, x + half]."""
    path = Path1D([x - half], [x + half])
    s = torch.linspace(0, 1, n, dtype=F64)[:, None]
    h = landscape_entropy(W, b, eps, s, path)
    mid = h[1:-1]
    return int(((mid < h[:-2]) & (mid < h[2:])).sum())


def _brute_fold_eps(W, b, x: float, lo: float, hi: float) -> float:
    """Bisection in log ε on the dense-grid count of minima near x (1 at lo, 0 at hi)."""
    assert _minima_near(W, b, lo, x) == 1 and _minima_near(W, b, hi, x) == 0
    for _ in range(30):
        mid = math.sqrt(lo * hi)
        if _minima_near(W, b, mid, x) >= 1:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def test_fold_eps_matches_dense_grid_bisection() -> None:
    W, b = _layer_1d()
    scan = scan_folds(W, b, GRID, Path1D([-6.0], [6.0]))
    assert len(scan.folds) == 4 and scan.exits == ()
    for fold in scan.folds:
        x = fold.x[0]
        brute = _brute_fold_eps(W, b, x, fold.eps_lo * 0.97, fold.eps_hi * 1.03)
        assert abs(math.log(brute / fold.eps)) < 1e-3, (fold, brute)
        # the pair really meets: just below, a min with a max beside it; just above, neither
        before = critical_points(W, b, fold.eps_lo, Path1D([x - 0.3], [x + 0.3]))
        kinds = sorted(p.kind for p in before)
        assert kinds == ["max", "min"], before
        assert abs(before[0].x[0] - before[1].x[0]) < 0.05
        assert critical_points(W, b, fold.eps_hi, Path1D([x - 0.3], [x + 0.3])) == ()


def test_a_minimum_leaving_through_the_path_end_is_an_exit_not_a_fold() -> None:
    """The basin near the atom at −0.4 drifts left as ε grows and merges at ε ≈ 0.5097 at
    x ≈ −0.708. On the path [−0.5, 1] it leaves through the end x = −0.5 first (ε ≈ 0.456):
    the count drops there, but with no max vanishing and |λ| large — not a bifurcation."""
    W, b = _layer_1d()
    path = Path1D([-0.5], [1.0])
    scan = scan_folds(W, b, GRID, path)
    assert [round(f.x[0], 2) for f in scan.folds] == [0.57]  # the real fold, inside the path
    assert len(scan.exits) == 1
    gone = scan.exits[0]
    assert abs(gone.x[0] + 0.5) < 1e-3 and 0.45 < gone.eps < 0.46
    # independent: on a path reaching past the end the minimum is still there (no fold yet)
    assert _minima_near(W, b, gone.eps_hi, -0.55, half=0.2) == 1
    # the drops are all accounted for: folds + exits = minima lost
    lost = scan.n_minima[0] - scan.n_minima[-1]
    assert len(scan.folds) + len(scan.exits) == lost


def test_2d_minimum_leaving_through_the_slice_edge_is_an_exit() -> None:
    """The same landscape in 2-D (the 1-D atoms in rows at y = ±0.8, ±2.4: minima at
    (x_j, ±0.8)); the slice's edge at x = −0.5 cuts the basins that drift out of it."""
    xs = ATOMS_1D[:, 0]
    y = torch.cat([torch.stack([xs, torch.full_like(xs, r)], 1) for r in (0.8, -0.8, 2.4, -2.4)])
    W, b = hm.lse_from_atoms(y, torch.zeros(len(y), dtype=F64), t=0.5)
    dom = Slice2D([0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-0.5, 1.2, -1.5, 1.5), n_grid=41)
    scan = scan_folds(W, b, torch.logspace(math.log10(0.05), 0.0, 20), dom)
    assert scan.n_minima[0] == 4 and scan.n_minima[-1] == 0
    assert scan.exits and all(abs(f.x[0] + 0.5) < 1e-3 for f in scan.exits)
    assert scan.folds and all(abs(f.x[0] - 0.57) < 0.01 for f in scan.folds)
    assert all(f.min_abs_eigenvalue < 1e-2 < min(e.min_abs_eigenvalue for e in scan.exits)
               for f in scan.folds)
    assert sum(f.minima_before - f.minima_after for f in scan.folds + scan.exits) == 4
