"""Atoms ↔ LSE weights, Hopf–Cole and Hopf–Lax: against NumPy evaluations written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hjplug import math as hm


def _spd(g: torch.Generator, d: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T + d * torch.eye(d, dtype=torch.float64)


def _np_hopf_cole(x, y, g, t, eps, sigma_inv):
    """Independent: explicit loops over atoms, NumPy long double."""
    out = []
    for xi in x:
        costs = [
            gj + (xi - yj) @ sigma_inv @ (xi - yj) / (4 * t) for yj, gj in zip(y, g, strict=True)
        ]
        costs = np.array(costs, dtype=np.longdouble)
        out.append(-eps * np.log(np.exp(-costs / eps).sum()))
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize("use_metric", [False, True])
def test_roundtrip_and_hopf_cole_against_numpy(seed: int, use_metric: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    N, d, t = 9, 3, 0.6
    metric = _spd(gen, d) if use_metric else None
    W = torch.randn(N, d, generator=gen, dtype=torch.float64)
    b = torch.randn(N, generator=gen, dtype=torch.float64)
    y, g = hm.atoms_from_lse(W, b, t, metric)
    W2, b2 = hm.lse_from_atoms(y, g, t, metric)
    torch.testing.assert_close(W2, W, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(b2, b, rtol=1e-13, atol=1e-13)
    x = torch.randn(20, d, generator=gen, dtype=torch.float64)
    sigma_inv = np.linalg.inv(metric.numpy()) if use_metric else np.eye(d)
    for eps in (1.0, 0.25):
        np.testing.assert_allclose(
            hm.hopf_cole(x, y, g, t, eps, metric).numpy(),
            _np_hopf_cole(x.numpy(), y.numpy(), g.numpy(), t, eps, sigma_inv),
            rtol=1e-12, atol=1e-12,
        )


def test_atoms_formula_by_hand() -> None:
    W = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([0.5], dtype=torch.float64)
    y, g = hm.atoms_from_lse(W, b, t=2.0)
    assert y.tolist() == [[4.0, 8.0]]  # 2t·W
    assert g.item() == pytest.approx(-0.5 - 2.0 * 5.0)  # −b − t|W|²


def test_hopf_lax_is_brute_force_min_and_the_eps_to_zero_limit(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(15, 2, generator=gen, dtype=torch.float64)
    g = torch.rand(15, generator=gen, dtype=torch.float64)
    x = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    brute = torch.stack([
        min(g[j] + ((xi - y[j]) ** 2).sum() / (4 * 1.5) for j in range(15)) for xi in x
    ])
    u0 = hm.hopf_lax(x, y, g, 1.5)
    torch.testing.assert_close(u0, brute)
    for eps in (0.1, 0.01, 0.001):  # u_0 − ε log N ≤ u_ε ≤ u_0
        ue = hm.hopf_cole(x, y, g, 1.5, eps)
        assert (ue <= u0 + 1e-12).all() and (ue >= u0 - eps * np.log(15) - 1e-12).all()


def test_characteristic_field_and_time_derivative_against_autograd(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(10, 3, generator=gen, dtype=torch.float64)
    g = torch.randn(10, generator=gen, dtype=torch.float64)
    x = torch.randn(8, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.full((8,), 0.9, dtype=torch.float64, requires_grad=True)
    metric = _spd(gen, 3)
    u = hm.hopf_cole(x, y, g, t, 0.3, metric)
    gx, gt = torch.autograd.grad(u.sum(), (x, t))
    torch.testing.assert_close(hm.characteristic_field(x.detach(), y, g, 0.9, 0.3, metric), gx)
    torch.testing.assert_close(hm.hopf_cole_time_derivative(x.detach(), y, g, 0.9, 0.3, metric),
                               gt)


def test_tight_hessian_bound_holds(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(12, generator=gen, dtype=torch.float64)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64) * 0.5
    h = hm.hessian_lse(x, W, b, 0.2)
    spectral = torch.linalg.matrix_norm(h, ord=2)
    assert (spectral <= hm.hessian_bound(W, 0.2, tight=True) + 1e-12).all()
    assert (hm.hessian_bound(W, 0.2, tight=True) <= hm.hessian_bound(W, 0.2) + 1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda W, b: hm.atoms_from_lse(W, b, t=0.0), r"'t' must be a finite number > 0"),
        (lambda W, b: hm.atoms_from_lse(W, b[:-1]), r"'b' must be one value per atom"),
        (lambda W, b: hm.atoms_from_lse(W, b, metric=torch.eye(3, dtype=W.dtype)),
         r"'metric' must be a 2×2 matrix"),
        (lambda W, b: hm.atoms_from_lse(W, b, metric=torch.tensor([[1.0, 2.0], [0.0, 1.0]],
                                                                  dtype=W.dtype)),
         r"'metric' must be symmetric"),
        (lambda W, b: hm.atoms_from_lse(W, b, metric=-torch.eye(2, dtype=W.dtype)),
         r"'metric' must be positive definite"),
        (lambda W, b: hm.hopf_cole(torch.zeros(4, 3, dtype=W.dtype), W, b, 1.0, 1.0),
         r"'y' must be a tensor whose last dimension matches x's d = 3"),
    ],
)
def test_invalid_arguments_say_what_and_where(call, match) -> None:
    W = torch.randn(5, 2, dtype=torch.float64)
    b = torch.randn(5, dtype=torch.float64)
    with pytest.raises(ValueError, match=match) as info:
        call(W, b)
    assert "hjplug.math." in str(info.value)
