"""LSE, Gibbs weights, entropy: against independent NumPy evaluations (fp64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hjplug import math as hm


def _np_lse(z: np.ndarray, eps: float) -> np.ndarray:
    """Independent: plain log-sum-exp in NumPy long double, no max shift."""
    return eps * np.log(np.exp(z.astype(np.longdouble) / eps).sum(-1)).astype(np.float64)


@pytest.mark.parametrize("eps", [2.0, 1.0, 0.3, 0.05])
def test_lse_matches_numpy(seed: int, eps: float) -> None:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(50, 9, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(hm.lse(z, eps).numpy(), _np_lse(z.numpy(), eps), rtol=1e-13,
                               atol=1e-13)


def test_lse_is_max_shifted() -> None:
    z = torch.tensor([1000.0, 999.0, -5.0], dtype=torch.float64)
    expected = 1000.0 + math.log(1 + math.exp(-1.0) + math.exp(-1005.0))
    assert hm.lse(z, 1.0).item() == pytest.approx(expected, rel=1e-15)
    assert torch.isfinite(hm.lse(z.float(), 0.01))


def test_per_head_epsilon_broadcasts(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64)  # [B, H, S, N]
    eps = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)[:, None]  # [H, 1] → per head
    out = hm.lse(z, eps)  # [B, H, S]
    for h in range(3):
        torch.testing.assert_close(out[:, h], hm.lse(z[:, h], float(eps[h])))


def test_entropy_matches_numpy_and_bounds(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(40, 12, generator=g, dtype=torch.float64) * 3
    for eps in (5.0, 1.0, 0.2):
        p = np.exp(z.numpy() / eps - _np_lse(z.numpy(), eps)[:, None] / eps)
        expected = -(p * np.log(p)).sum(-1)
        h = hm.entropy(z, eps)
        np.testing.assert_allclose(h.numpy(), expected, rtol=1e-12, atol=1e-13)
        assert (h >= 0).all() and (h <= math.log(12) + 1e-12).all()


def test_entropy_one_hot_is_exactly_zero_and_masked_atoms_have_no_nan() -> None:
    z = torch.tensor([[0.0, -1e4, -1e4], [1.0, float("-inf"), 1.0]], dtype=torch.float64)
    h = hm.entropy(z, 1.0)
    assert h[0].item() == 0.0
    assert h[1].item() == pytest.approx(math.log(2), abs=1e-15)  # masked atom removed, not uniform
    assert torch.isfinite(h).all()
    pi = hm.gibbs(z, 1.0)
    assert pi[1, 1].item() == 0.0


def test_normalized_entropy_uses_unmasked_count() -> None:
    z = torch.tensor([[0.0, 0.0, float("-inf"), float("-inf")], [0.0] + [float("-inf")] * 3])
    hn = hm.normalized_entropy(z, 1.0)
    assert hn[0].item() == pytest.approx(1.0)
    assert math.isnan(hn[1].item())  # k = 1: undefined, skipped by callers


def test_gibbs_is_gradient_of_lse(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(hm.lse(z, 0.4).sum(), z)
    torch.testing.assert_close(grad, hm.gibbs(z.detach(), 0.4), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_eps_names_argument(bad: float) -> None:
    with pytest.raises(ValueError, match=r"argument 'eps' must be a finite number > 0; got"):
        hm.lse(torch.zeros(3), bad)
    with pytest.raises(ValueError, match="'eps'"):
        hm.entropy(torch.zeros(3), torch.tensor([1.0, bad]))


def test_tropical_limit_and_bounds(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(100, 16, generator=g, dtype=torch.float64)
    f0 = hm.lse_tropical(z)
    for eps in (1.0, 0.1, 0.01):
        gap = hm.lse(z, eps) - f0
        assert (gap >= -1e-14).all()
        assert (gap <= hm.gap_bound(z, eps) + 1e-14).all()
        assert (hm.gap_bound(z, eps) <= hm.uniform_bound(z, eps) + 1e-14).all()
    assert (hm.lse(z, 1e-3) - f0).abs().max() < 1e-3 * math.log(16) + 1e-12
