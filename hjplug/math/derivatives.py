"""Closed-form derivatives of an LSE layer f_ε(x) = LSE_ε(Wx + b), O(N) per query.

    ∇_x f   = E_π[W] = Σ_j π_j W_j
    ∇²_x f  = Cov_π(W)/ε                       (‖·‖₂ ≤ max_j ‖W_j‖²/ε; ≤ diam({W_j})²/(4ε))
    ∂H/∂ε   = Var_π(z)/ε³ ≥ 0                   (z = Wx + b; entropy rises with ε)
    ∇_x H   = Cov_π(W, −log π)/ε
    ∇_x u   = Σ⁻¹(x − E_π[y])/(2t)              (characteristic field of the Hopf–Cole u)
    ∂_t u   = −E_π[|x − y|²_{Σ⁻¹}]/(4t²)

Shapes: x [..., d]; W [N, d] or [..., N, d]; b [N] or [..., N].
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.math._checks import Scalar, atoms_match, last_dims_match, metric_spd, positive
from hjplug.math.atoms import apply_metric_inverse, quadratic_form
from hjplug.math.hopf_cole import heat_weights
from hjplug.math.lse import _as_scale, _shifted, gibbs, log_gibbs

__all__ = [
    "characteristic_field",
    "entropy_eps_derivative",
    "entropy_grad_x",
    "hessian_bound",
    "hessian_lse",
    "hopf_cole_time_derivative",
    "logits",
    "lse_grad",
]


def logits(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """z = Wx + b for each query: [..., d] × [N, d] → [..., N]."""
    where = "hjplug.math.logits"
    last_dims_match("W", W, "x", x, where)
    atoms_match("W", W, "b", b, where)
    return (x.unsqueeze(-2) * W).sum(-1) + b  # [..., N]


def _pi(x: Tensor, W: Tensor, b: Tensor, eps: Scalar, where: str
        ) -> tuple[Tensor, Tensor, Scalar]:
    """(z [..., N], π [..., N], ε broadcast against the result [...] + [1]): one ε per query
    when ε is a tensor (as in `lse`); π overflow-safe for ε ≪ |z| (see lse._shifted)."""
    positive("eps", eps, where)
    z = logits(x, W, b)  # [..., N]
    return z, gibbs(z, eps), _as_scale(eps, z, -1)


def lse_grad(x: Tensor, W: Tensor, b: Tensor, eps: Scalar) -> Tensor:
    """∇_x f = E_π[W] = Σ_j π_j W_j.  [..., d]"""
    _, pi, _ = _pi(x, W, b, eps, "hjplug.math.lse_grad")
    return (pi.unsqueeze(-1) * W).sum(-2)


def hessian_lse(x: Tensor, W: Tensor, b: Tensor, eps: Scalar) -> Tensor:
    """∇²_x f = Cov_π(W)/ε = Σ_j π_j (W_j − W̄)(W_j − W̄)ᵀ / ε.  [..., d, d]"""
    _, pi, e = _pi(x, W, b, eps, "hjplug.math.hessian_lse")
    mean = (pi.unsqueeze(-1) * W).sum(-2)  # [..., d]
    wc = W - mean.unsqueeze(-2)  # [..., N, d]
    cov = torch.einsum("...n,...ni,...nj->...ij", pi, wc, wc)  # [..., d, d]
    return cov / (e.unsqueeze(-1) if isinstance(e, Tensor) else e)  # ε [..., 1, 1]


def hessian_bound(W: Tensor, eps: Scalar, tight: bool = False) -> Tensor:
    """Upper bound on ‖∇²_x f‖₂: max_j ‖W_j‖²/ε, or diam({W_j})²/(4ε) with tight=True.  [...]"""
    positive("eps", eps, "hjplug.math.hessian_bound")
    if tight:
        diam = torch.cdist(W, W).amax(dim=(-2, -1))  # [...]
        return diam**2 / (4 * eps)
    return (W * W).sum(-1).amax(-1) / eps


def entropy_eps_derivative(z: Tensor, eps: Scalar, dim: int = -1) -> Tensor:
    """∂H(π)/∂ε = Var_π(z)/ε³ for π = softmax(z/ε) (≥ 0: entropy is monotone in ε)."""
    positive("eps", eps, "hjplug.math.entropy_eps_derivative")
    _, u, e = _shifted(z, eps, dim)  # u = (z − max z)/ε ≤ 0, one ε per row when a tensor
    pi = torch.softmax(u, dim=dim)
    # Var_π(z)/ε³ = Var_π(u)/ε: no ε³ to underflow, no (z/ε)² to overflow as ε → 0
    uf = torch.where(pi > 0, u, torch.zeros_like(u))  # removed atoms contribute nothing
    uf = torch.where(torch.isnan(pi), pi, uf)  # ... but a NaN row stays NaN
    mean = (pi * uf).sum(dim, keepdim=True)
    var = (pi * (uf - mean) ** 2).sum(dim, keepdim=True)
    return (var / e).squeeze(dim)


def entropy_grad_x(x: Tensor, W: Tensor, b: Tensor, eps: Scalar) -> Tensor:
    """∇_x H(π(x)) = Cov_π(W, −log π)/ε.  [..., d]"""
    where = "hjplug.math.entropy_grad_x"
    z, pi, e = _pi(x, W, b, eps, where)
    neg_logp = -log_gibbs(z, eps)  # [..., N]
    neg_logp = torch.where(pi > 0, neg_logp, torch.zeros_like(neg_logp))  # 0·∞ := 0
    a = neg_logp - (pi * neg_logp).sum(-1, keepdim=True)  # centred −log π
    return (pi * a).unsqueeze(-1).mul(W).sum(-2) / e  # [..., d]


def characteristic_field(
    x: Tensor, y: Tensor, g: Tensor, t: Scalar, eps: Scalar, metric: Tensor | None = None
) -> Tensor:
    """∇_x u_ε = Σ⁻¹(x − E_π[y])/(2t), π the heat-kernel weights of the atoms.  [..., d]"""
    pi = heat_weights(x, y, g, t, eps, metric)  # [..., N]
    ybar = (pi.unsqueeze(-1) * y).sum(-2)  # [..., d]
    delta = x - ybar
    if metric is not None:
        metric_spd(metric, x.shape[-1], "hjplug.math.characteristic_field")
        delta = apply_metric_inverse(delta, metric)
    tt = t.unsqueeze(-1) if isinstance(t, Tensor) and t.dim() > 0 else t  # [..., 1]
    return delta / (2 * tt)


def hopf_cole_time_derivative(
    x: Tensor, y: Tensor, g: Tensor, t: Scalar, eps: Scalar, metric: Tensor | None = None
) -> Tensor:
    """∂_t u_ε = −E_π[|x − y|²_{Σ⁻¹}]/(4t²).  [...]"""
    pi = heat_weights(x, y, g, t, eps, metric)
    sq = quadratic_form(x.unsqueeze(-2) - y, metric, inverse=True)  # [..., N]
    return -(pi * sq).sum(-1) / (4 * t**2)
