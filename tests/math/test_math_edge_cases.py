"""Edge cases of the math core against closed forms written out by hand (fp64 references):
ε far below the logit scale (no z/ε overflow), half precision, ±inf / NaN entries, per-row ε
tensors, and the relative accuracy of the exact activations near 0."""

from __future__ import annotations

import math

import pytest
import torch

from hjplug import math as hm
from hjplug.errors import InvalidArgumentError

D = torch.float64
INF = float("inf")


@pytest.mark.parametrize("eps", [1e-30, 1e-300, 1e-320])
def test_tiny_eps_is_the_tropical_limit_not_overflow(eps: float) -> None:
    """z/ε overflows for ε ≪ |z|/max_float: the value must still be max z (+ ε·log #ties)."""
    z = torch.tensor([[1.0, 0.5, -2.0], [3.0, 3.0, -1.0]], dtype=D)
    assert hm.lse(z, eps).tolist() == [1.0, 3.0]
    assert hm.gibbs(z, eps).tolist() == [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]
    h = hm.entropy(z, eps)
    assert h[0].item() == 0.0 and h[1].item() == pytest.approx(math.log(2), abs=1e-15)
    logp = hm.log_gibbs(z, eps)[0]  # (z − max z)/ε: finite or −inf, never NaN
    assert logp[0].item() == 0.0 and (logp[1:] <= -0.5 / eps).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("eps", [1e-5, 1e-8, 1e-30])
def test_low_precision_small_eps(dtype: torch.dtype, eps: float) -> None:
    z = torch.tensor([1.0, 2.0, 3.0], dtype=dtype)
    assert hm.lse(z, eps).item() == 3.0
    assert hm.gibbs(z, eps).tolist() == [0.0, 0.0, 1.0]
    assert hm.entropy(z, eps).item() == 0.0
    assert hm.softplus_lse(torch.tensor([2.0, -1.0], dtype=dtype), eps).tolist() == [2.0, 0.0]
    assert hm.entropy_eps_derivative(z, eps).item() == 0.0


def test_hopf_cole_and_derivatives_at_tiny_eps() -> None:
    y = torch.tensor([[0.0], [1.0]], dtype=D)
    g = torch.tensor([0.0, 0.2], dtype=D)
    x = torch.tensor([[0.3]], dtype=D)
    u0 = hm.hopf_lax(x, y, g, 1.0)
    torch.testing.assert_close(hm.hopf_cole(x, y, g, 1.0, 1e-320), u0, rtol=0, atol=0)
    assert hm.heat_weights(x, y, g, 1.0, 1e-320).tolist() == [[1.0, 0.0]]
    W = torch.tensor([[1.0], [2.0]], dtype=D)
    assert hm.lse_grad(x, W, torch.zeros(2, dtype=D), 1e-320).tolist() == [[2.0]]


def test_plus_inf_logit_is_the_one_hot_limit() -> None:
    z = torch.tensor([1.0, INF, 0.0], dtype=D)
    assert hm.lse(z, 1.0).item() == INF
    assert hm.gibbs(z, 1.0).tolist() == [0.0, 1.0, 0.0]
    assert hm.sigmoid_gibbs(torch.tensor([INF, -INF])).tolist() == [1.0, 0.0]
    assert hm.tanh_gibbs(torch.tensor([INF, -INF])).tolist() == [1.0, -1.0]


def test_nan_logits_propagate_and_are_never_a_zero_entropy() -> None:
    """A NaN score must not pass for a one-hot (H = 0) row: NaN in, NaN out (kernel convention)."""
    z = torch.tensor([[1.0, float("nan"), 0.0], [1.0, 2.0, 0.0]], dtype=D)
    for value in (hm.lse(z), hm.entropy(z), hm.normalized_entropy(z),
                  hm.entropy_eps_derivative(z, 1.0)):
        assert math.isnan(value[0].item()) and math.isfinite(value[1].item())
    assert torch.isnan(hm.gibbs(z)[0]).all()


def test_fully_masked_row_and_empty_atoms_keep_their_convention() -> None:
    """Nothing visible: LSE = −inf, H = 0 (as the kernels), normalised H undefined (NaN)."""
    z = torch.full((2, 3), -INF, dtype=D)
    assert hm.lse(z, 0.5).tolist() == [-INF, -INF]
    assert hm.entropy(z, 0.5).tolist() == [0.0, 0.0]
    assert torch.isnan(hm.normalized_entropy(z, 0.5)).all()
    empty = torch.zeros(3, 0, dtype=D)
    assert hm.lse(empty, 1.0).tolist() == [-INF] * 3
    assert hm.entropy(empty, 1.0).tolist() == [0.0] * 3
    assert hm.gibbs(empty, 1.0).shape == (3, 0)


def test_entropy_of_a_one_hot_is_plus_zero() -> None:
    h = hm.entropy(torch.tensor([0.0, -1e4, -1e4], dtype=D), 1.0)
    assert h.item() == 0.0 and math.copysign(1.0, h.item()) == 1.0


def _per_row(fn, *args) -> torch.Tensor:
    return torch.stack([fn(*a) for a in zip(*args, strict=True)])


def test_per_row_eps_tensor_means_one_eps_per_row_everywhere(seed: int) -> None:
    """ε as a tensor holds one value per leading index (as in lse); every function agrees."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(4, 4, generator=gen, dtype=D) * 2
    eps = torch.tensor([0.3, 0.6, 1.0, 2.0], dtype=D)
    floats = [float(e) for e in eps]
    for fn in (hm.lse, hm.entropy, hm.gibbs, hm.entropy_eps_derivative, hm.gap_bound,
               hm.uniform_bound):
        torch.testing.assert_close(fn(z, eps), _per_row(fn, z, floats), rtol=1e-13, atol=1e-13)
    W = torch.randn(4, 2, generator=gen, dtype=D)
    b = torch.randn(4, generator=gen, dtype=D)
    x = torch.randn(4, 2, generator=gen, dtype=D)
    for fn in (hm.lse_grad, hm.hessian_lse, hm.entropy_grad_x):
        torch.testing.assert_close(fn(x, W, b, eps),
                                   _per_row(lambda xi, e, f=fn: f(xi, W, b, e), x, floats),
                                   rtol=1e-13, atol=1e-13)
    y, g = hm.atoms_from_lse(W, b, 0.7)
    for fn in (hm.hopf_cole, hm.heat_weights, hm.characteristic_field,
               hm.hopf_cole_time_derivative):
        torch.testing.assert_close(fn(x, y, g, 0.7, eps),
                                   _per_row(lambda xi, e, f=fn: f(xi, y, g, 0.7, e), x, floats),
                                   rtol=1e-13, atol=1e-13)


def test_value_eps_derivative_is_the_entropy_and_entropy_derivative_fd(seed: int) -> None:
    """d/dε[ε·LSE(z/ε)] = H(π) and dH/dε = Var_π(z)/ε³, by central finite differences."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(20, 7, generator=gen, dtype=D) * 2
    h = 1e-6
    for eps in (0.3, 1.0, 3.0):
        fd = (hm.lse(z, eps + h) - hm.lse(z, eps - h)) / (2 * h)
        torch.testing.assert_close(fd, hm.entropy(z, eps), rtol=0, atol=1e-8)
        fd = (hm.entropy(z, eps + h) - hm.entropy(z, eps - h)) / (2 * h)
        torch.testing.assert_close(fd, hm.entropy_eps_derivative(z, eps), rtol=0, atol=1e-7)


def test_tanh_gibbs_keeps_relative_accuracy_near_zero() -> None:
    z = torch.cat([torch.logspace(-300, -1, 60, dtype=D), -torch.logspace(-300, -1, 60, dtype=D)])
    ref = torch.tanh(z)
    assert float(((hm.tanh_gibbs(z) - ref) / ref).abs().max()) < 1e-14
    assert hm.tanh_gibbs(torch.zeros(1, dtype=D)).item() == 0.0


def test_gradients_at_tiny_and_ordinary_eps_match_closed_forms(seed: int) -> None:
    """The overflow-safe evaluation keeps autograd exact: ∂LSE/∂z = π, ∂²LSE/∂z² = (diag π − ππᵀ)/ε,
    ∂H/∂ε = Var_π(z)/ε³."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(6, generator=gen, dtype=D)
    for eps in (2.0, 0.4, 0.05):
        hess = torch.autograd.functional.hessian(lambda v, e=eps: hm.lse(v, e), z)
        pi = hm.gibbs(z, eps)
        torch.testing.assert_close(hess, (torch.diag(pi) - torch.outer(pi, pi)) / eps)
        e = torch.tensor(eps, dtype=D, requires_grad=True)
        (de,) = torch.autograd.grad(hm.entropy(z, e), e)
        torch.testing.assert_close(de, hm.entropy_eps_derivative(z, eps))
    zt = torch.tensor([1.0, 3.0, 3.0, -2.0], dtype=D, requires_grad=True)
    (grad,) = torch.autograd.grad(hm.lse(zt, 1e-300), zt)
    assert grad.tolist() == [0.0, 0.5, 0.5, 0.0]


def test_autograd_curvature_at_exact_ties() -> None:
    """Tied maximal logits (x = 0 between atoms ±w) keep the full Hessian Cov_π(W)/ε = wwᵀ/ε:
    the max shift must be a constant for autograd, not a branch that freezes the tied atoms."""
    w = torch.tensor([0.6, -0.8], dtype=D)
    W = torch.stack([w, -w])
    b = torch.zeros(2, dtype=D)
    for eps in (1.0, 1e-3):
        hess = torch.autograd.functional.hessian(
            lambda v, e=eps: hm.lse(hm.logits(v, W, b), e), torch.zeros(2, dtype=D))
        torch.testing.assert_close(hess, torch.outer(w, w) / eps)
        torch.testing.assert_close(hm.hessian_lse(torch.zeros(2, dtype=D), W, b, eps), hess)
    z = torch.zeros(3, dtype=D)
    hz = torch.autograd.functional.hessian(lambda v: hm.lse(v, 0.5), z)
    torch.testing.assert_close(hz, (torch.eye(3, dtype=D) / 3 - 1 / 9) / 0.5)


def test_masked_atoms_keep_derivatives_finite(seed: int) -> None:
    """b_j = −inf (a removed atom / masked key): ∇ₓH = Cov_π(W, −log π)/ε, its autograd twin
    and ∂H/∂ε by autograd are those of the layer without that atom — not NaN (0·∞)."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(5, 2, generator=gen, dtype=D)
    b = torch.randn(5, generator=gen, dtype=D)
    b[3] = -INF
    keep = [0, 1, 2, 4]
    x = torch.randn(6, 2, generator=gen, dtype=D)
    ref = hm.entropy_grad_x(x, W[keep], b[keep], 0.5)
    torch.testing.assert_close(hm.entropy_grad_x(x, W, b, 0.5), ref)
    xx = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(hm.entropy(hm.logits(xx, W, b), 0.5).sum(), xx)
    torch.testing.assert_close(auto, ref)
    e = torch.tensor(0.5, dtype=D, requires_grad=True)
    z = hm.logits(x, W, b)
    (de,) = torch.autograd.grad(hm.entropy(z, e).sum(), e)
    torch.testing.assert_close(de, hm.entropy_eps_derivative(z, 0.5).sum())
    torch.testing.assert_close(hm.entropy_eps_derivative(z, 0.5),
                               hm.entropy_eps_derivative(z[:, keep], 0.5))


def test_gibbs_of_a_row_with_every_atom_removed_is_zero() -> None:
    z = torch.tensor([[0.5, -1.0, 2.0], [float("-inf")] * 3], dtype=torch.float64)
    p = hm.gibbs(z, 0.7)
    torch.testing.assert_close(p[0], torch.softmax(z[0] / 0.7, -1))
    assert torch.equal(p[1], torch.zeros(3, dtype=torch.float64))


def test_a_bool_is_not_an_epsilon() -> None:
    with pytest.raises(InvalidArgumentError):
        hm.lse(torch.zeros(3), True)  # type: ignore[arg-type]
