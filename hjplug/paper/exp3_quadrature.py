"""Experiment 3 — quadrature rate: an N-atom LSE layer is an N-point quadrature of Hopf–Cole.

ε = 1, t = 1, g(y) = |y| (Euclidean). Continuum (normalised) Hopf–Cole solution on Ω = [−2, 2]^d:

    ũ(x) = −ε·log( (1/|Ω|) ∫_Ω exp(−(g(y) + |x − y|²/(4t))/ε) dy )

N-atom layer: atoms on the uniform grid linspace(−2, 2, n)^d (N = n^d), as an LSELayer
(W, b) = lse_from_atoms(y, g, t), normalised by the equal quadrature weights 1/N:

    ũ_N(x) = x²/(4t) − f_ε(x) + ε·log N   (= −ε·log (1/N) Σ_j exp(−c_j(x)/ε))

Reference: composite Gauss–Legendre product rule (panels split at y_i = 0, the kink of g), folded
into the atoms' data as g_k − ε·log(w_k/|Ω|) and evaluated by hjplug.math.hopf_cole — an evaluation
independent of the layer. Its accuracy is estimated by a second, finer Gauss rule.
Error e(N) = max over test points x ∈ [−1.5, 1.5]^d of |ũ_N(x) − ũ(x)|; theory e ∝ N^{−1/d}.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hjplug import math as hm
from hjplug.layers import LSELayer
from hjplug.paper._common import (
    F64,
    RunConfig,
    entropy_monotonicity,
    log_grid,
    loglog_slope,
    new_figure,
    save_figure,
)
from hjplug.paper.records import ExperimentResult, Verdict

NUMBER, NAME, TITLE = 3, "quadrature", "Quadrature rate of the N-atom layer (ε = 1, t = 1, g = |y|)"
EPS, T, HALF_WIDTH = 1.0, 1.0, 2.0
SLOPE_REL_TOL = 0.25  # |slope + 1/d| ≤ 0.25/d
REF_REL_TOL = 0.01  # reference error estimate ≤ 1% of the smallest measured error

# d → (grid points per axis n, reference (panels per half-axis, Gauss nodes per panel) ×2)
FULL = {1: ((8, 16, 32, 64, 128, 256), (8, 8), (16, 10)),
        2: ((4, 6, 8, 12, 16, 24, 32), (2, 8), (2, 10)),
        4: ((3, 4, 5, 6, 8, 10), (1, 6), (1, 8))}
QUICK = {1: ((8, 16, 32, 64, 128), (4, 8), (8, 8)),
         2: ((4, 6, 8, 12, 16), (2, 6), (2, 8)),
         4: ((3, 4, 5, 6, 7), (1, 5), (1, 6))}


@dataclass(frozen=True)
class RateFit:
    """Per d: grid sizes N, errors e(N), fitted log–log slope, theory −1/d, reference error."""

    d: int
    n_atoms: tuple[int, ...]
    errors: tuple[float, ...]
    slope: float
    intercept: float
    theory_slope: float
    reference_error: float


def gauss_axis(panels: int, k: int) -> tuple[Tensor, Tensor]:
    """Composite Gauss–Legendre nodes/weights on [−2, 2] with `panels` panels per half.  [m], [m]"""
    xg, wg = np.polynomial.legendre.leggauss(k)
    edges = np.concatenate([np.linspace(-HALF_WIDTH, 0, panels + 1),
                            np.linspace(0, HALF_WIDTH, panels + 1)[1:]])
    lo, hi = edges[:-1, None], edges[1:, None]  # [2P, 1]
    nodes = (hi - lo) / 2 * xg + (hi + lo) / 2  # [2P, k]
    weights = (hi - lo) / 2 * wg  # [2P, k]
    return torch.tensor(nodes.ravel(), dtype=F64), torch.tensor(weights.ravel(), dtype=F64)


def reference(x: Tensor, d: int, panels: int, k: int) -> Tensor:
    """ũ(x) by the product Gauss rule: hopf_cole with g_k − ε·log(w_k/|Ω|).  x [P, d] → [P]"""
    nodes, weights = gauss_axis(panels, k)
    y = torch.cartesian_prod(*([nodes] * d)).reshape(-1, d)  # [M, d]
    w = torch.cartesian_prod(*([weights] * d)).reshape(-1, d).prod(1)  # [M]
    g = y.norm(dim=1) - EPS * torch.log(w / (2 * HALF_WIDTH) ** d)  # [M]
    return torch.cat([hm.hopf_cole(xc, y, g, T, EPS) for xc in x.split(8)])


def grid_layer(d: int, n: int) -> LSELayer:
    """The LSELayer whose atoms are linspace(−2, 2, n)^d with g(y) = |y| (t = 1, ε = 1)."""
    axis = torch.linspace(-HALF_WIDTH, HALF_WIDTH, n, dtype=F64)
    y = torch.cartesian_prod(*([axis] * d)).reshape(-1, d)  # [n^d, d]
    return LSELayer.from_atoms(y, y.norm(dim=1), T, EPS)


def layer_solution(layer: LSELayer, x: Tensor) -> Tensor:
    """ũ_N(x) = x²/(4t) − f_ε(x) + ε·log N.  [P, d] → [P]"""
    with torch.no_grad():
        return (x**2).sum(1) / (4 * T) - layer(x) + EPS * math.log(layer.n_atoms)


def verdict(fits: tuple[RateFit, ...]) -> Verdict:
    """Pass iff for every d: |slope + 1/d| ≤ 0.25/d and reference error ≤ 1% of min e(N)."""
    bad = []
    for f in fits:
        if not abs(f.slope - f.theory_slope) <= SLOPE_REL_TOL * abs(f.theory_slope):
            bad.append(f"d={f.d}: slope {f.slope:.3f} vs {f.theory_slope:.3f}")
        if not f.reference_error <= REF_REL_TOL * min(f.errors):
            bad.append(f"d={f.d}: reference error {f.reference_error:.1e} too large")
    detail = "; ".join(f"d={f.d}: slope {f.slope:.3f} (theory {f.theory_slope:.3f})" for f in fits)
    return Verdict(
        passed=bool(fits) and not bad,
        criterion="fitted log–log slope within 25% of −1/d for every d "
        "(reference accurate to 1% of the smallest error)",
        detail=detail + (f" — failed: {'; '.join(bad)}" if bad else ""),
    )


def run(cfg: RunConfig) -> ExperimentResult:
    start = time.perf_counter()
    plan = QUICK if cfg.quick else FULL
    n_test = 32 if cfg.quick else 64
    gen = cfg.generator(NUMBER)
    fits: list[RateFit] = []
    check = None
    for d, (ns, (p1, k1), (p2, k2)) in plan.items():
        x = torch.rand(n_test, d, generator=gen, dtype=F64) * 3.0 - 1.5  # [P, d] in [−1.5, 1.5]^d
        ref = reference(x, d, p2, k2)
        ref_err = float((reference(x, d, p1, k1) - ref).abs().max())
        errors, layer = [], None
        for n in ns:
            layer = grid_layer(d, n)
            errors.append(float((layer_solution(layer, x) - ref).abs().max()))
        n_atoms = tuple(n**d for n in ns)
        slope, icpt = loglog_slope(torch.tensor(n_atoms, dtype=F64),
                                   torch.tensor(errors, dtype=F64))
        fits.append(RateFit(d, n_atoms, tuple(errors), slope, icpt, -1.0 / d, ref_err))
        assert layer is not None
        c = entropy_monotonicity(layer.W, layer.b, x, log_grid(1e-2, 1e2, 21))
        check = c if check is None else check.merged(c)
    assert check is not None

    fig, (ax,) = new_figure(1, width=6.5)
    for f, color in zip(fits, ("tab:blue", "tab:orange", "tab:green"), strict=True):
        n = np.array(f.n_atoms, dtype=float)
        ax.loglog(n, f.errors, "o", color=color, label=f"d = {f.d}: measured")
        ax.loglog(n, np.exp(f.intercept) * n**f.slope, "-", color=color,
                  label=f"d = {f.d}: fit, slope {f.slope:.2f}")
        ax.loglog(n, f.errors[0] * (n / n[0]) ** f.theory_slope, ":", color=color,
                  label=f"d = {f.d}: theory N^(−1/{f.d})")
    ax.set_xlabel("number of atoms N")
    ax.set_ylabel("max |ũ_N(x) − ũ(x)| over test points")
    ax.set_title("Experiment 3: quadrature error of the LSE layer (ε = 1, t = 1)")
    ax.legend(fontsize=7, ncol=1)
    figure = save_figure(fig, cfg.out_dir / "exp3_quadrature.png")

    rows = tuple((str(f.d), f"{f.n_atoms[0]}–{f.n_atoms[-1]} ({len(f.n_atoms)})",
                  f"{f.errors[0]:.3g} → {f.errors[-1]:.3g}", f"{f.slope:.3f}",
                  f"{f.theory_slope:.3f}", f"{f.reference_error:.1e}") for f in fits)
    return ExperimentResult(
        number=NUMBER, name=NAME, title=TITLE,
        columns=("d", "N range (sizes)", "error", "fitted slope", "theory −1/d", "ref. error"),
        rows=rows, figure=str(figure), verdict=verdict(tuple(fits)), entropy_check=check,
        seconds=time.perf_counter() - start, data=tuple(fits),
    )
