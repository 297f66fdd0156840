"""Experiment 4 — robustness controlled by ε: the input curvature of an LSE layer is bounded.

    ‖∇²_x f_ε(x)‖₂ = ‖Cov_π(W)‖₂/ε ≤ max_j ‖W_j‖²/ε      (tighter: diam({W_j})²/(4ε))

LSELayers (d = 1, N = 30) are trained on f(x) = |x| (x in [−2, 2]) at each ε. On test points
x in [−3, 3] the largest Hessian is compared with the bound: ratio = max_x |f''(x)| / (max_j W_j²/ε)
must never exceed 1. The closed-form Hessian is checked against autograd (independent evaluation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from hjplug.layers import LSELayer
from hjplug.paper._common import (
    F64,
    RunConfig,
    entropy_monotonicity,
    log_grid,
    new_figure,
    save_figure,
)
from hjplug.paper._fit import fit_layer
from hjplug.paper.records import ExperimentResult, Verdict

NUMBER, NAME, TITLE = 4, "robustness", "Robustness: max Hessian vs max_j W_j²/ε (trained on |x|)"
EPSILONS = (0.08, 0.12, 0.2, 0.35, 0.6, 1.0)
N_ATOMS = 30
RATIO_TOL = 1e-12  # round-off allowance on ratio ≤ 1
AUTOGRAD_TOL = 1e-9  # relative agreement of the closed-form Hessian with autograd


@dataclass(frozen=True)
class RobustnessRow:
    """At ε: fit RMSE, max_x |f''|, the bound max_j W_j²/ε, the ratio, tight ratio, autograd gap."""

    eps: float
    rmse: float
    max_hessian: float
    bound: float
    ratio: float
    tight_ratio: float
    autograd_error: float


def autograd_hessian(layer: LSELayer, x: torch.Tensor) -> torch.Tensor:
    """f''(x) by double backward through layer.forward (d = 1).  x [P, 1] → [P]"""
    xx = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(layer(xx).sum(), xx, create_graph=True)  # [P, 1]
    (hess,) = torch.autograd.grad(grad.sum(), xx)  # [P, 1]
    return hess.squeeze(1)


def verdict(rows: tuple[RobustnessRow, ...]) -> Verdict:
    """Pass iff every ratio ≤ 1 (+1e-12) and the closed form matches autograd (rel. ≤ 1e-9)."""
    over = [r for r in rows if not r.ratio <= 1.0 + RATIO_TOL]
    bad_ad = [r for r in rows if not r.autograd_error <= AUTOGRAD_TOL]
    worst = max((r.ratio for r in rows), default=float("nan"))
    detail = f"max ratio {worst:.3f} over ε ∈ {{{', '.join(f'{r.eps:g}' for r in rows)}}}"
    if over:
        detail += "; bound exceeded at ε = " + ", ".join(f"{r.eps:g}" for r in over)
    if bad_ad:
        detail += "; closed form ≠ autograd at ε = " + ", ".join(f"{r.eps:g}" for r in bad_ad)
    return Verdict(
        passed=bool(rows) and not over and not bad_ad,
        criterion="max_x ‖∇²f_ε(x)‖ / (max_j ‖W_j‖²/ε) ≤ 1 at every ε "
        "(Hessian = Cov_π(W)/ε, checked against autograd)",
        detail=detail,
    )


def run(cfg: RunConfig) -> ExperimentResult:
    start = time.perf_counter()
    adam, lbfgs = (150, 0) if cfg.quick else (800, 100)
    x_train = torch.linspace(-2, 2, 201, dtype=F64).unsqueeze(1)  # [200, 1]
    target = x_train.abs().squeeze(1)  # [200]
    x_test = torch.linspace(-3, 3, 601 if cfg.quick else 2001, dtype=F64).unsqueeze(1)
    rows: list[RobustnessRow] = []
    curves: list[tuple[float, torch.Tensor, float]] = []
    check = None
    for k, eps in enumerate(EPSILONS):
        layer = LSELayer(1, N_ATOMS, eps, generator=cfg.generator(NUMBER * 100 + k))
        with torch.no_grad():
            layer.W.mul_(2.0)
        loss = fit_layer(layer, x_train, target, adam, lbfgs, lr=0.03)
        with torch.no_grad():
            hess = layer.hessian(x_test)[:, 0, 0]  # [P]
            bound = float(layer.hessian_bound())
            tight = float(layer.hessian_bound(tight=True))
        ad = autograd_hessian(layer, x_test)
        ad_err = float((ad - hess).abs().max()) / max(1.0, float(hess.abs().max()))
        max_h = float(hess.abs().max())
        rows.append(RobustnessRow(eps, loss**0.5, max_h, bound, max_h / bound, max_h / tight,
                                  ad_err))
        curves.append((eps, hess, bound))
        c = entropy_monotonicity(layer.W, layer.b, x_test[::10], log_grid(1e-3, 1e2, 41))
        check = c if check is None else check.merged(c)
    assert check is not None

    fig, (ax0, ax1) = new_figure(2)
    xs = x_test.squeeze(1)
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    for (eps, hess, bound), color in zip(curves, colors, strict=True):
        ax0.semilogy(xs, hess.clamp_min(1e-8), color=color, label=f"ε = {eps:g}")
        ax0.axhline(bound, color=color, ls=":", lw=1)
    ax0.set_ylim(1e-4, None)
    ax0.set_xlabel("x")
    ax0.set_ylabel("f''_ε(x) = Var_π(W)/ε  (dotted: max_j W_j²/ε)")
    ax0.set_title("input curvature of trained layers")
    ax0.legend(fontsize=7)
    eps_v = [r.eps for r in rows]
    ax1.plot(eps_v, [r.ratio for r in rows], "o-", label="max f'' / (max_j W_j²/ε)")
    ax1.plot(eps_v, [r.tight_ratio for r in rows], "s--", label="max f'' / (diam(W)²/(4ε))")
    ax1.axhline(1.0, color="black", ls="--", label="bound (ratio = 1)")
    ax1.set_xscale("log")
    ax1.set_ylim(0, 1.1)
    ax1.set_xlabel("ε (viscosity / temperature)")
    ax1.set_ylabel("ratio (dimensionless)")
    ax1.set_title("curvature / bound")
    ax1.legend(fontsize=7)
    fig.suptitle(f"Experiment 4: robustness, N = {N_ATOMS} trained on |x|")
    figure = save_figure(fig, cfg.out_dir / "exp4_robustness.png")

    table = tuple((f"{r.eps:g}", f"{r.rmse:.2e}", f"{r.max_hessian:.3g}", f"{r.bound:.3g}",
                   f"{r.ratio:.3f}", f"{r.tight_ratio:.3f}", f"{r.autograd_error:.1e}")
                  for r in rows)
    return ExperimentResult(
        number=NUMBER, name=NAME, title=TITLE,
        columns=("ε", "fit RMSE", "max |f''|", "max W²/ε", "ratio", "tight ratio",
                 "vs autograd"),
        rows=table, figure=str(figure), verdict=verdict(tuple(rows)), entropy_check=check,
        seconds=time.perf_counter() - start, data=tuple(rows),
    )
