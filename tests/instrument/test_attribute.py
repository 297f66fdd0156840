"""hjplug.attribute: π over keys / atoms, Σπ = 1 checked, ∂f/∂b_j = π_j against autograd."""

from __future__ import annotations

import math

import pytest
import torch
from instr_models import bert, eager_twin

import hjplug
from hjplug.errors import HJPlugError, InvalidArgumentError


def test_head_attribution_is_the_bias_gradient_of_the_hj_value() -> None:
    model, inputs = bert()
    layer, head, b = 1, 2, 0
    attr = hjplug.attribute(model, inputs, layer=layer, head=head, topk=4, batch=b)
    twin = eager_twin(model)
    with torch.no_grad():
        out = twin(**inputs, output_hidden_states=True, output_attentions=True)
    sa = twin.encoder.layer[layer].attention.self
    h = out.hidden_states[layer][b]
    d = sa.attention_head_size
    q = sa.query(h).view(-1, 4, d)[:, head].double()  # [S, d]
    k = sa.key(h).view(-1, 4, d)[:, head].double()
    eps = math.sqrt(d)
    mask = inputs["attention_mask"][b].bool()
    bias = torch.where(mask, 0.0, float("-inf")).double().expand(q.shape[0], -1).clone()
    bias.requires_grad_(True)
    f = eps * torch.logsumexp((q @ k.T + bias) / eps, dim=-1)  # f_i, the HJ value
    grad = torch.autograd.grad(f.sum(), bias)[0]  # ∂f_i/∂b_ij (rows independent)
    torch.testing.assert_close(attr.weights.double(), grad, atol=1e-5, rtol=0)
    torch.testing.assert_close(attr.value.double(), f.detach(), atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(attr.weights.double(), out.attentions[layer][b, head].double(),
                               atol=1e-6, rtol=0)
    assert attr.sum_error < 1e-5 and attr.epsilon == pytest.approx(eps)
    assert bool((attr.weights[:, ~mask] == 0).all())  # masked keys are removed atoms
    one = hjplug.attribute(model, inputs, layer=layer, head=head, topk=3, query=2)
    assert one.weights.shape == (1, 10) and torch.equal(one.weights[0], attr.weights[2])
    assert one.topk_indices.shape == (1, 3)


def test_lse_layer_attribution_against_autograd(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(9, 3, generator=g, dtype=torch.float64)
    b = torch.randn(9, generator=g, dtype=torch.float64).requires_grad_(True)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    eps = 0.37
    attr = hjplug.attribute((W, b.detach()), x, eps=eps, topk=2)
    f = eps * torch.logsumexp((x @ W.T + b) / eps, dim=-1)
    for i in range(5):
        (gi,) = torch.autograd.grad(f[i], b, retain_graph=True)
        torch.testing.assert_close(attr.influence[i], gi, atol=1e-12, rtol=0)
    assert attr.sum_error < 1e-12
    assert torch.equal(attr.topk_indices, attr.weights.topk(2, -1).indices)


def test_sum_check_can_fail(monkeypatch) -> None:
    real = torch.softmax
    monkeypatch.setattr(torch, "softmax", lambda z, dim: real(z, dim) * 1.01)
    with pytest.raises(HJPlugError, match="do not sum to 1"):
        hjplug.attribute((torch.eye(3), torch.zeros(3)), torch.ones(2, 3))


def test_bad_indices() -> None:
    model, inputs = bert()
    with pytest.raises(InvalidArgumentError, match=r"layer.*\[0, 2\)"):
        hjplug.attribute(model, inputs, layer=2, head=0)
    with pytest.raises(InvalidArgumentError, match=r"head.*\[0, 4\)"):
        hjplug.attribute(model, inputs, layer=0, head=4)
    with pytest.raises(InvalidArgumentError, match="batch"):
        hjplug.attribute(model, inputs, layer=0, head=0, batch=3)
    with pytest.raises(InvalidArgumentError, match="eps"):
        hjplug.attribute((torch.eye(2), torch.zeros(2)), torch.ones(1, 2), eps=0.0)
