"""Checks 6–8: curvature, entropy derivatives (against autograd), exact activations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hjplug import math as hm
from hjplug.identities._data import randn, rel_err
from hjplug.identities.rows import VerifyRow


def check_hessian(gen: torch.Generator) -> list[VerifyRow]:
    """∇²f = Cov_π(W)/ε (autograd Hessian) and ‖∇²f‖₂ ≤ max_j‖W_j‖²/ε."""
    N, d = 16, 3
    W, b, x = randn(gen, N, d), randn(gen, N), randn(gen, 25, d)
    err = viol = err_grad = attained = 0.0
    w = randn(gen, d)
    pair = torch.stack([w, -w])  # two opposite atoms, equal logits at x = 0: Cov_π(W) = wwᵀ
    zero_b, origin = torch.zeros(2, dtype=W.dtype), torch.zeros(d, dtype=W.dtype)
    for eps in (1.0, 0.3, 0.1):
        xx = x.clone().requires_grad_(True)
        (auto_grad,) = torch.autograd.grad(hm.lse(hm.logits(xx, W, b), eps).sum(), xx)
        err_grad = max(err_grad, rel_err(hm.lse_grad(x, W, b, eps), auto_grad))
        h_pair = torch.autograd.functional.hessian(
            lambda xi, e=eps: hm.lse(hm.logits(xi, pair, zero_b), e), origin)
        norm_pair = torch.linalg.matrix_norm(h_pair, ord=2)  # = |w|²/ε, both bounds attained
        attained = max(attained, rel_err(hm.hessian_bound(pair, eps), norm_pair),
                       rel_err(hm.hessian_bound(pair, eps, tight=True), norm_pair))
        closed = hm.hessian_lse(x, W, b, eps)  # [P, d, d]
        auto = torch.stack([
            torch.autograd.functional.hessian(lambda xi, e=eps: hm.lse(hm.logits(xi, W, b), e), xi)
            for xi in x
        ])
        err = max(err, rel_err(closed, auto))
        spectral = torch.linalg.matrix_norm(auto, ord=2)  # [P]
        viol = max(viol, float((spectral - hm.hessian_bound(W, eps)).clamp_min(0).max()))
    setting = f"N={N}, d={d}, ε ∈ {1, 0.3, 0.1}, 25 points"
    return [
        VerifyRow("∇f = E_π[W] (vs autograd)", setting, err_grad, 1e-12),
        VerifyRow("∇²f = Cov_π(W)/ε (vs autograd)", setting, err, 1e-10),
        VerifyRow("‖∇²f‖₂ ≤ max‖W_j‖²/ε (violation)", setting, viol, 1e-12),
        VerifyRow("‖∇²f‖₂ bounds attained (atoms ±w, x = 0: |w|²/ε = diam²/(4ε))",
                  f"d={d}, ε ∈ {{1, 0.3, 0.1}}", attained, 1e-12),
    ]


def check_entropy_derivatives(gen: torch.Generator) -> list[VerifyRow]:
    """∂H/∂ε = Var_π(z)/ε³ and ∇_x H = Cov_π(W, −log π)/ε, both against autograd."""
    N, d = 16, 3
    W, b, x = randn(gen, N, d), randn(gen, N), randn(gen, 30, d)
    z = hm.logits(x, W, b)
    err_eps = err_x = 0.0
    for eps in (2.0, 1.0, 0.3, 0.1):
        e = torch.tensor(eps, dtype=z.dtype, requires_grad=True)
        auto_eps = torch.stack([torch.autograd.grad(hm.entropy(zi, e), e)[0] for zi in z])
        err_eps = max(err_eps, rel_err(hm.entropy_eps_derivative(z, eps), auto_eps))
        xx = x.clone().requires_grad_(True)
        (auto_x,) = torch.autograd.grad(hm.entropy(hm.logits(xx, W, b), eps).sum(), xx)
        err_x = max(err_x, rel_err(hm.entropy_grad_x(x, W, b, eps), auto_x))
    setting = f"N={N}, d={d}, ε ∈ {2, 1, 0.3, 0.1}, 30 points"
    return [
        VerifyRow("∂H/∂ε = Var_π(z)/ε³ (vs autograd)", setting, err_eps, 1e-10),
        VerifyRow("∇ₓH = Cov_π(W, −log π)/ε (vs autograd)", setting, err_x, 1e-10),
    ]


def check_activations(gen: torch.Generator) -> list[VerifyRow]:
    """softplus = LSE_1(z, 0), sigmoid = 2-atom π, tanh = π₊ − π₋ (vs torch's own kernels)."""
    z = randn(gen, 2000, scale=8.0).clamp(-40, 40)
    setting = "2000 points, z ∈ [−40, 40]"
    return [
        VerifyRow("softplus(z) = LSE_1(z, 0)", setting,
                  rel_err(hm.softplus_lse(z), F.softplus(z, threshold=1e4)), 1e-12),
        VerifyRow("sigmoid(z) = π of 2-atom LSE {z, 0}", setting,
                  rel_err(hm.sigmoid_gibbs(z), torch.sigmoid(z)), 1e-12),
        VerifyRow("tanh(z) = π₊ − π₋ of {z, −z}", setting,
                  rel_err(hm.tanh_gibbs(z), torch.tanh(z)), 1e-12),
    ]
