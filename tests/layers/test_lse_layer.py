"""LSELayer: forward, atoms, Hessian and entropy against independent evaluations."""

from __future__ import annotations

import pytest
import torch

from hjplug import math as hm
from hjplug.errors import InvalidArgumentError
from hjplug.layers import LSELayer

F64 = torch.float64


def _layer(seed: int, d: int = 3, n: int = 7, eps: float = 0.4) -> LSELayer:
    return LSELayer(d, n, eps, generator=torch.Generator().manual_seed(seed))


def test_forward_matches_a_direct_sum(seed: int) -> None:
    layer = _layer(seed)
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    z = x @ layer.W.detach().T + layer.b.detach()  # [50, 7]
    direct = layer.eps * torch.log(torch.exp(z / layer.eps).sum(-1))  # no max shift, small z
    assert torch.allclose(layer(x).detach(), direct, atol=1e-12, rtol=0)
    assert layer(x).shape == (50,)


def test_atoms_give_the_hopf_cole_identity_and_round_trip(seed: int) -> None:
    layer = _layer(seed)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(seed + 2), dtype=F64)
    t = 0.7
    y, g = layer.atoms(t)
    u = hm.hopf_cole(x, y.detach(), g.detach(), t, layer.eps)  # from the atoms, not (W, b)
    with torch.no_grad():
        assert torch.allclose(layer(x) + u, (x * x).sum(-1) / (4 * t), atol=1e-12)
    back = LSELayer.from_atoms(y.detach(), g.detach(), t, eps=layer.eps)
    assert torch.allclose(back.W, layer.W) and torch.allclose(back.b, layer.b)
    # explicit formulas y = 2tW, g = −b − t|W|²
    assert torch.allclose(y, 2 * t * layer.W)
    assert torch.allclose(g, -layer.b - t * (layer.W**2).sum(-1))


def test_hessian_matches_autograd_and_the_bound(seed: int) -> None:
    layer = _layer(seed, d=2, n=9, eps=0.2)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(seed + 3), dtype=F64)
    closed = layer.hessian(x).detach()  # [6, 2, 2]
    auto = torch.stack([torch.autograd.functional.hessian(lambda v: layer(v), xi) for xi in x])
    assert torch.allclose(closed, auto, atol=1e-10)
    norms = torch.linalg.matrix_norm(closed, ord=2)
    assert bool((norms <= layer.hessian_bound().detach() + 1e-12).all())
    assert bool((norms <= layer.hessian_bound(tight=True).detach() + 1e-12).all())


def test_gibbs_and_entropy_are_the_softmax_ones(seed: int) -> None:
    layer = _layer(seed)
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(seed + 4), dtype=F64)
    with torch.no_grad():
        z = layer.logits(x)
        p = torch.exp(z / 0.3) / torch.exp(z / 0.3).sum(-1, keepdim=True)
        assert torch.allclose(layer.gibbs(x, eps=0.3), p, atol=1e-14)
        assert torch.allclose(layer.entropy(x, eps=0.3), -(p * p.log()).sum(-1), atol=1e-12)


def test_layer_trains_and_rejects_bad_arguments() -> None:
    layer = _layer(0)
    layer(torch.ones(2, 3, dtype=F64)).sum().backward()
    assert layer.W.grad is not None and layer.b.grad is not None
    with pytest.raises(InvalidArgumentError, match="eps"):
        LSELayer(2, 3, eps=0.0)
    with pytest.raises(InvalidArgumentError, match="n_atoms"):
        LSELayer(2, 0)
    assert "n_atoms=7" in repr(layer)
