"""Checks 1–4: the Hopf–Cole identity, the HJ PDE, the tropical limit, the Gibbs identity."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hjplug import math as hm
from hjplug.identities._data import randn, rel_err, spd, uniform
from hjplug.identities.rows import VerifyRow

EPSILONS = (1.0, 0.5, 0.2, 0.1, 0.05)
EPS_TEXT = "ε ∈ {1, 0.5, 0.2, 0.1, 0.05}"


def check_hopf_cole_identity(gen: torch.Generator) -> list[VerifyRow]:
    """f_ε(x) + u_ε(x,t) = xᵀΣ⁻¹x/(4t); u from the atoms (y, g), f from (W, b)."""
    rows = []
    N, d = 24, 4
    for label in ("Σ = I", "random SPD Σ"):
        metric = None if label == "Σ = I" else spd(gen, d)
        W, b, x = randn(gen, N, d), randn(gen, N), randn(gen, 200, d)
        t = float(uniform(gen, 0.3, 2.0, 1))
        y, g = hm.atoms_from_lse(W, b, t, metric)
        rhs = hm.quadratic_form(x, metric, inverse=True) / (4 * t)  # [P]
        err = max(
            rel_err(hm.lse(hm.logits(x, W, b), eps) + hm.hopf_cole(x, y, g, t, eps, metric), rhs)
            for eps in EPSILONS
        )
        rows.append(VerifyRow(
            "f_ε + u_ε = xᵀΣ⁻¹x/(4t)", f"{label}, N={N}, d={d}, t={t:.2f}, {EPS_TEXT}", err, 1e-12,
        ))
    return rows


def _pde_residuals(
    x: Tensor, t: Tensor, y: Tensor, g: Tensor, eps: float, metric: Tensor | None
) -> tuple[Tensor, Tensor, float]:
    """Autograd residuals of u (with source −εd/(2t)) and of the normalised ũ (exact HJ), and
    the largest error of the closed-form ∇ₓu and ∂ₜu (characteristic field) against autograd."""
    d = x.shape[-1]
    sig = torch.eye(d, dtype=x.dtype) if metric is None else metric
    out = []
    err_closed = 0.0
    for normalized in (False, True):
        xx, tt = x.clone().requires_grad_(True), t.clone().requires_grad_(True)
        u = hm.hopf_cole(xx, y, g, tt, eps, metric, normalized=normalized)  # [P]
        gx, gt = torch.autograd.grad(u.sum(), (xx, tt), create_graph=True)  # [P, d], [P]
        hess = torch.stack(
            [torch.autograd.grad(gx[:, k].sum(), xx, retain_graph=True)[0] for k in range(d)],
            dim=1,
        )  # [P, d, d]
        trace = torch.einsum("kl,plk->p", sig, hess)  # tr(Σ ∇²u)
        ham = torch.einsum("pk,kl,pl->p", gx, sig, gx)  # ∇uᵀ Σ ∇u
        res = gt + ham - eps * trace
        if not normalized:
            res = res + eps * d / (2 * tt)
            err_closed = max(
                rel_err(hm.characteristic_field(x, y, g, t, eps, metric), gx.detach()),
                rel_err(hm.hopf_cole_time_derivative(x, y, g, t, eps, metric), gt.detach()),
            )
        out.append(res.detach())
    return out[0], out[1], err_closed


def _heat_normalisation_error(eps: float, t: float, d: int) -> float:
    """ũ for the constant datum g ≡ 0, as atoms on a grid of spacing h (g_j = −εd·log h, the
    quadrature weight h^d): ũ = −ε·log ∫ (4πεt)^{−d/2} e^{−|x−y|²/(4εt)} dy = 0. The grid sum
    of a Gaussian is exact to e^{−4π²εt/h²} (Poisson summation): this fixes the constant
    (εd/2)·log(4πεt), which the PDE residual cannot see."""
    h = 0.1
    axis = torch.arange(-16.0, 16.0 + h / 2, h, dtype=torch.float64)
    y = torch.cartesian_prod(*([axis] * d)).reshape(-1, d)  # [N, d]
    g = torch.full((y.shape[0],), -eps * d * math.log(h), dtype=torch.float64)
    x = torch.linspace(-1.0, 1.0, 7, dtype=torch.float64)[:, None].expand(7, d)  # [7, d]
    u = hm.hopf_cole(x, y, g, t, eps, normalized=True)
    return float(u.abs().max())


def check_pde(gen: torch.Generator) -> list[VerifyRow]:
    """u_t + ∇uᵀΣ∇u = ε tr(Σ∇²u) − εd/(2t), and ũ_t + ∇ũᵀΣ∇ũ = ε tr(Σ∇²ũ), by autograd."""
    rows = []
    for d in (1, 3):
        for label in ("Σ = I", "random SPD Σ"):
            metric = None if label == "Σ = I" else spd(gen, d)
            N = 12
            y, g = randn(gen, N, d), uniform(gen, -1.0, 1.0, N)
            x, t = randn(gen, 40, d), uniform(gen, 0.3, 2.0, 40)
            errs_u, errs_n, errs_c = [], [], []
            for eps in (1.0, 0.3, 0.1):
                r_u, r_n, e_c = _pde_residuals(x, t, y, g, eps, metric)
                errs_u.append(float(r_u.abs().max()))
                errs_n.append(float(r_n.abs().max()))
                errs_c.append(e_c)
            setting = f"d={d}, {label}, N={N}, ε ∈ {1, 0.3, 0.1}, 40 (x, t)"
            rows.append(VerifyRow("PDE residual of u (source −εd/(2t))", setting,
                                  max(errs_u), 1e-8))
            rows.append(VerifyRow("PDE residual of normalised ũ (viscous HJ)", setting,
                                  max(errs_n), 1e-8))
            rows.append(VerifyRow("∇u = Σ⁻¹(x − E_π[y])/(2t), ∂ₜu = −E_π|x−y|²/(4t²) (vs autograd)",
                                  setting, max(errs_c), 1e-10))
    for d in (1, 2):
        err = max(_heat_normalisation_error(eps, t, d) for eps in (0.5, 0.1) for t in (0.5, 1.5))
        rows.append(VerifyRow("ũ normalisation (εd/2)·log(4πεt): heat kernel of g ≡ 0 gives 0",
                              f"d={d}, atoms on a grid h=0.1 over [−16, 16]^d, ε ∈ {{0.5, 0.1}}, "
                              "t ∈ {0.5, 1.5}", err, 1e-12))
    return rows


def check_tropical(gen: torch.Generator) -> list[VerifyRow]:
    """0 ≤ f_ε − f_0 ≤ ε·log N, the gap bound, and f_0 + u_0 = |x|²/(4t) (Hopf–Lax)."""
    N, d, t = 32, 3, 0.8
    W, b, x = randn(gen, N, d), randn(gen, N), randn(gen, 300, d)
    z = hm.logits(x, W, b)  # [P, N]
    f0 = hm.lse_tropical(z)
    viol_uniform = viol_gap = 0.0
    for eps in EPSILONS:
        diff = hm.lse(z, eps) - f0
        viol_uniform = max(viol_uniform, float((-diff).clamp_min(0).max()),
                           float((diff - eps * math.log(N)).clamp_min(0).max()))
        viol_gap = max(viol_gap, float((diff - hm.gap_bound(z, eps)).clamp_min(0).max()))
    y, g = hm.atoms_from_lse(W, b, t)
    err_lax = rel_err(f0 + hm.hopf_lax(x, y, g, t), (x * x).sum(-1) / (4 * t))
    setting = f"N={N}, d={d}, {EPS_TEXT}"
    # where the bounds are attained (so a bound that is too loose fails too): all k unmasked
    # logits equal → f_ε − f_0 = ε·log k; one logit Δ above N − 1 equal ones → the gap bound
    flat = torch.zeros(8, N, dtype=torch.float64)
    flat[:, N // 2:] = float("-inf")  # k = N/2 unmasked atoms
    delta = uniform(gen, 0.0, 3.0, 8)
    peak = torch.zeros(8, N, dtype=torch.float64)
    peak[:, 0] = delta
    err_attained = 0.0
    for eps in EPSILONS:
        err_attained = max(
            err_attained,
            rel_err(hm.uniform_bound(flat, eps), torch.full((8,), eps * math.log(N // 2),
                                                            dtype=torch.float64)),
            rel_err(hm.lse(flat, eps) - hm.lse_tropical(flat), hm.uniform_bound(flat, eps)),
            rel_err(hm.lse(peak, eps) - hm.lse_tropical(peak), hm.gap_bound(peak, eps)),
            rel_err(hm.gap_bound(peak, eps), eps * torch.log1p((N - 1) * torch.exp(-delta / eps))),
        )
    return [
        VerifyRow("bounds attained: all equal → ε·log k; one Δ above N−1 equal → gap bound",
                  f"N={N} (k={N // 2} unmasked), Δ ∈ [0, 3], {EPS_TEXT}", err_attained, 1e-12),
        VerifyRow("0 ≤ f_ε − f_0 ≤ ε·log N (violation)", setting, viol_uniform, 1e-12),
        VerifyRow("f_ε − f_0 ≤ ε·log(1+(N−1)e^{−Δ/ε}) (violation)", setting, viol_gap, 1e-12),
        VerifyRow("f_0 + u_0 = |x|²/(4t) (Hopf–Lax)", f"{setting}, t={t}", err_lax, 1e-12),
    ]


def check_gibbs_variational(gen: torch.Generator) -> list[VerifyRow]:
    """LSE_ε(z) = ⟨π, z⟩ + ε·H(π), including masked (−inf) atoms."""
    z = randn(gen, 64, 20, scale=3.0)
    z[:, ::3] = float("-inf")  # removed atoms
    err = 0.0
    for eps in EPSILONS:
        pi = hm.gibbs(z, eps)
        inner = torch.where(pi > 0, pi * z, torch.zeros_like(z)).sum(-1)
        err = max(err, rel_err(inner + eps * hm.entropy(z, eps), hm.lse(z, eps)))
    return [VerifyRow("LSE_ε(z) = ⟨π,z⟩ + ε·H(π)", f"N=20 (7 masked), {EPS_TEXT}", err, 1e-12)]
