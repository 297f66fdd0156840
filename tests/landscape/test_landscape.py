"""Critical points and folds of x ↦ H(π(x; ε)) against brute-force evaluations of H on grids."""

from __future__ import annotations

import math

import pytest
import torch

from hjplug import math as hm
from hjplug.landscape import Path1D, Slice2D, critical_points, landscape_entropy, scan_folds
from hjplug.landscape.critical import coordinate_gradient

F64 = torch.float64
ATOMS_1D = torch.tensor([-2.6, -1.5, -0.4, 0.7, 1.7, 2.7], dtype=F64)[:, None]
PATH = Path1D([-4.0], [4.0])


def _layer_1d() -> tuple[torch.Tensor, torch.Tensor]:
    return hm.lse_from_atoms(ATOMS_1D, torch.zeros(6, dtype=F64), t=0.5)  # π ∝ e^{−(x−y)²/(2ε)}


def _brute_1d(W, b, eps, n=40001):
    """Independent: dense samples of H itself (no gradients), discrete local minima/maxima."""
    s = torch.linspace(0, 1, n, dtype=F64)[:, None]
    h = landscape_entropy(W, b, eps, s, PATH)
    mid = h[1:-1]
    minima = s[1:-1, 0][(mid < h[:-2]) & (mid < h[2:])]
    maxima = s[1:-1, 0][(mid > h[:-2]) & (mid > h[2:])]
    return minima, maxima


def _descend(W, b, eps: float, p: torch.Tensor, dom: Slice2D, bound: float,
             iters: int = 4000) -> torch.Tensor:
    """Gradient descent on H from p (slice coordinates) with a backtracking step: the local
    minimum whose basin holds p; stops early once |x|_∞ > bound (left the domain)."""
    x = p.clone()
    h = landscape_entropy(W, b, eps, x[None], dom)[0]
    step = 1e-2
    for _ in range(iters):
        g = coordinate_gradient(W, b, eps, x[None], dom)[0]
        if float(g.norm()) < 1e-9 or float(x.abs().max()) > bound:
            break
        while step > 1e-14:
            y = x - step * g
            hy = landscape_entropy(W, b, eps, y[None], dom)[0]
            if hy < h:
                x, h, step = y, hy, step * 2
                break
            step /= 2
        else:
            break
    return x


def _is_local_min(W, b, eps: float, p: torch.Tensor, dom: Slice2D, r: float = 2e-3) -> bool:
    """Independent check: H(p) ≤ H on a ring of radius r around p (plain evaluations)."""
    t = torch.linspace(0, 2 * math.pi, 65, dtype=F64)[:-1]
    ring = p + r * torch.stack([t.cos(), t.sin()], -1)  # [64, 2]
    h = landscape_entropy(W, b, eps, torch.cat([p[None], ring]), dom)
    return bool(h[0] <= h[1:].min() + 1e-12)


def test_closed_form_coordinate_gradient_matches_autograd(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    W, b = torch.randn(7, 2, generator=gen, dtype=F64), torch.randn(7, generator=gen, dtype=F64)
    dom = Slice2D([0.1, -0.2], [1.0, 0.3], [-0.2, 1.0], (-2, 2, -2, 2))
    c = torch.randn(15, 2, generator=gen, dtype=F64, requires_grad=True)
    (auto,) = torch.autograd.grad(landscape_entropy(W, b, 0.4, c, dom).sum(), c)
    torch.testing.assert_close(coordinate_gradient(W, b, 0.4, c.detach(), dom), auto)


@pytest.mark.parametrize("eps", [0.05, 0.2, 0.35, 0.45])
def test_1d_critical_points_match_brute_force(eps: float) -> None:
    W, b = _layer_1d()
    pts = critical_points(W, b, eps, PATH)
    minima, maxima = _brute_1d(W, b, eps)
    got_min = torch.tensor([p.coords[0] for p in pts if p.kind == "min"], dtype=F64)
    got_max = torch.tensor([p.coords[0] for p in pts if p.kind == "max"], dtype=F64)
    assert len(got_min) == len(minima) and len(got_max) == len(maxima)
    torch.testing.assert_close(got_min, minima, atol=1e-4, rtol=0)
    torch.testing.assert_close(got_max, maxima, atol=1e-4, rtol=0)
    for p in pts:  # Morse types agree with the sign of the Hessian
        assert (p.kind == "min") == (p.eigenvalues[0] > 0)


def test_1d_folds_are_where_brute_force_minima_disappear() -> None:
    W, b = _layer_1d()
    eps_grid = torch.logspace(math.log10(0.02), math.log10(3.0), 40)
    scan = scan_folds(W, b, eps_grid, PATH)
    assert scan.monotone_violations == 0
    brute = [len(_brute_1d(W, b, float(e), n=20001)[0]) for e in eps_grid]
    assert list(scan.n_minima) == brute
    drops = [i for i in range(len(brute) - 1) if brute[i + 1] < brute[i]]
    assert len(drops) >= 2
    for i in drops:  # the folds inside each dropping bracket account for the whole drop
        inside = [f for f in scan.folds if float(eps_grid[i]) <= f.eps_lo < float(eps_grid[i + 1])]
        assert inside and sum(f.minima_before - f.minima_after for f in inside) \
            == brute[i] - brute[i + 1]
        typical = sorted(abs(p.eigenvalues[0]) for p in scan.points[i])
        for fold in inside:
            assert fold.eps_lo < fold.eps_hi <= float(eps_grid[i + 1])
            assert fold.min_abs_eigenvalue < 0.1 * typical[len(typical) // 2]  # |λ| → 0
    assert len(scan.folds) == sum(f.minima_before - f.minima_after for f in scan.folds)
    assert scan.n_minima[0] == 4 and scan.n_minima[-1] == 0  # particle → wave


def test_two_folds_in_one_bracket_are_reported_separately() -> None:
    W, b = _layer_1d()
    scan = scan_folds(W, b, [0.45, 0.6], PATH)
    assert scan.n_minima == (2, 0)
    assert len(scan.folds) == 2
    first, second = scan.folds
    assert first.eps_hi <= second.eps_lo  # two distinct merges, in order
    assert abs(first.x[0] - second.x[0]) > 0.5  # of two different basins
    typical = sorted(abs(p.eigenvalues[0]) for p in scan.points[0])[len(scan.points[0]) // 2]
    for fold in scan.folds:  # the reported point is the vanishing minimum, near the fold
        assert fold.min_abs_eigenvalue < 0.02 * typical


def test_2d_minima_match_brute_force(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed % 1000)
    y = torch.cat([
        torch.tensor([-1.0, -1.0], dtype=F64) + 0.4 * torch.randn(8, 2, generator=gen, dtype=F64),
        torch.tensor([1.0, 1.0], dtype=F64) + 0.4 * torch.randn(8, 2, generator=gen, dtype=F64),
    ])
    g = torch.cat([torch.zeros(8, dtype=F64), torch.ones(8, dtype=F64)])
    W, b = hm.lse_from_atoms(y, g, t=1.0)
    dom = Slice2D([0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-2.5, 2.5, -2.5, 2.5), n_grid=31)
    n = 401
    ga = torch.linspace(-2.5, 2.5, n, dtype=F64)
    grid = torch.stack(torch.meshgrid(ga, ga, indexing="ij"), -1)
    for eps in (0.06, 0.12):  # (smaller ε: valleys narrower than the brute grid)
        h = landscape_entropy(W, b, eps, grid.reshape(-1, 2), dom).reshape(n, n)
        inner = h[1:-1, 1:-1]
        neighbours = torch.stack([h[1 + i:n - 1 + i, 1 + j:n - 1 + j]
                                  for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)])
        brute = grid[1:-1, 1:-1][inner < neighbours.amin(0)]  # [m, 2]
        found = torch.tensor([p.coords for p in critical_points(W, b, eps, dom)
                              if p.kind == "min"], dtype=F64).reshape(-1, 2)
        # every minimum found is one (H below a small ring around it, plain evaluations)
        for p in found:
            assert _is_local_min(W, b, eps, p, dom), (eps, p)
        # every discrete minimum of the dense grid lies in the basin of a minimum found: descend
        # from it. Discrete minima whose descent leaves the domain are not minima of it: a true
        # minimum just outside the edge, or a valley narrower than the grid running out of it.
        tol = 4 * 5.0 / (n - 1)
        for p in brute:
            x = _descend(W, b, eps, p, dom, bound=3.0)
            if float(x.abs().max()) > 2.5:
                continue
            assert len(found) and float(torch.cdist(x[None], found).min()) < tol, \
                (eps, found, p, x)


def test_monotonicity_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    import hjplug.landscape.folds as folds

    real = folds.landscape_entropy
    monkeypatch.setattr(folds, "landscape_entropy", lambda *a: -real(*a))
    W, b = _layer_1d()
    scan = scan_folds(W, b, [0.1, 0.2, 0.4], Path1D([-4.0], [4.0], n_grid=101))
    assert scan.monotone_violations > 0


@pytest.mark.parametrize(
    ("eps_grid", "domain", "match"),
    [
        ([0.2, 0.1], PATH, "strictly increasing"),
        ([0.0, 0.1], PATH, "finite values > 0"),
        ([0.1, 0.2], Path1D([0.0, 0.0], [1.0, 1.0]), "d = 1"),
    ],
)
def test_bad_arguments(eps_grid, domain, match) -> None:
    W, b = _layer_1d()
    with pytest.raises(ValueError, match=match):
        scan_folds(W, b, eps_grid, domain)


def test_degenerate_domains_are_refused() -> None:
    with pytest.raises(ValueError, match="independent of u"):
        Slice2D([0, 0], [1, 1], [2, 2], (-1, 1, -1, 1))
    with pytest.raises(ValueError, match="'x1'"):
        Path1D([0.0], [0.0])
