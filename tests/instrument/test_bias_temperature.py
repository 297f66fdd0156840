"""A deformed ε rescales the whole logit vector, the model's own additive bias included
(z = z₀·ε₀/ε, paper-notes §1/§4: the bias is part of the atoms' initial data), on every FX path
(SDPA, kernel, explicit, per head, hard max, replayed baddbmm chain) and in the same way as the
Hugging Face path (`eager_attention` with λ)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hjplug
from hjplug.integrations.huggingface.attention_math import eager_attention
from hjplug.modules.attention import HJAttentionStep

B, H, T, D = 2, 3, 7, 8


class BiasedAttention(nn.Module):
    """q, k, v projections, then SDPA with a float mask, an explicit matmul + bias chain, or
    Bloom's fused baddbmm(bias, q, kᵀ) chain; the bias holds finite values and a removed key."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.q, self.k, self.v = (nn.Linear(D, D, bias=False) for _ in range(3))

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.q(x), self.k(x), self.v(x)  # [B, H, T, D] each

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x)
        if self.kind == "sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        if self.kind == "eager":
            s = torch.matmul(q, k.transpose(-1, -2)) * D ** -0.5 + bias
            return torch.matmul(torch.softmax(s, dim=-1), v)
        qf, kf = q.reshape(B * H, T, D), k.reshape(B * H, T, D)  # baddbmm, as Bloom
        s = torch.baddbmm(bias.reshape(B * H, T, T), qf, kf.transpose(1, 2), alpha=D ** -0.5)
        p = torch.softmax(s.view(B, H, T, T), dim=-1)
        return torch.matmul(p, v)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, H, T, D, generator=g)
    bias = 2.0 * torch.randn(B, H, T, T, generator=g)  # ALiBi-sized finite biases
    bias[:, :, :, 0] = torch.finfo(torch.float32).min  # one removed key (HF's stand-in for −∞)
    return x, bias


def _reference(m: BiasedAttention, x: torch.Tensor, bias: torch.Tensor, lam: torch.Tensor
               ) -> torch.Tensor:
    """HF path: eager_attention with λ per head, in fp64: softmax((s/ε₀ + b)/λ)·v."""
    q, k, v = (t.double() for t in m.qkv(x))
    out = eager_attention(q, k, v, bias.double(), D ** -0.5, False, lam.double(), None, 0.0)
    return out[0]


def _converted(kind: str) -> tuple[BiasedAttention, nn.Module, HJAttentionStep]:
    torch.manual_seed(0)
    m = BiasedAttention(kind).eval()
    hj = hjplug.convert(m, _inputs())
    steps = [s for s in hj.modules() if isinstance(s, HJAttentionStep)]
    assert len(steps) == 1, [type(s).__name__ for s in hj.modules()]
    assert math.isclose(float(steps[0].identified_epsilon), D ** 0.5)
    return m, hj, steps[0]


@pytest.mark.parametrize("kind", ["sdpa", "eager", "baddbmm"])
@pytest.mark.parametrize("observe", [None, "stats", "scores"])
def test_deformed_output_divides_the_bias_too(kind: str, observe: str | None) -> None:
    m, hj, step = _converted(kind)
    if kind == "baddbmm":
        assert step.deform_core is not None  # the replayed kind
    x, bias = _inputs(1)
    lam = 2.5
    handle = None
    if observe == "stats":
        handle = step.observe_stats(lambda *a: None)
    elif observe == "scores":
        handle = step.observe("scores", lambda *a: None)
    try:
        with torch.no_grad(), hjplug.deform(hj, lam):
            got = hj(x, bias)
    finally:
        if handle is not None:
            handle.remove()
    want = _reference(m, x, bias, torch.full((H,), lam))
    torch.testing.assert_close(got.double(), want, atol=2e-6, rtol=1e-5)
    fixed_bias = torch.softmax((m.qkv(x)[0] @ m.qkv(x)[1].transpose(-1, -2)) * D ** -0.5 / lam
                               + bias, -1) @ m.qkv(x)[2]  # the old convention: b not rescaled
    assert (got - fixed_bias).abs().max() > 1e-2  # the test tells the two conventions apart


@pytest.mark.parametrize("kind", ["sdpa", "eager"])
def test_per_head_epsilon_scales_each_heads_bias(kind: str) -> None:
    m, hj, step = _converted(kind)
    x, bias = _inputs(2)
    with torch.no_grad(), hjplug.deform(hj, 3.0, heads=[1]):
        got = hj(x, bias)
        seen = {}
        h = step.observe("scores", lambda s, p, z: seen.setdefault("z", z))
        hj(x, bias)
        h.remove()
    lam = torch.tensor([1.0, 3.0, 1.0])
    torch.testing.assert_close(got.double(), _reference(m, x, bias, lam), atol=2e-6, rtol=1e-5)
    q, k, _ = m.qkv(x)
    z0 = (q @ k.transpose(-1, -2)) * D ** -0.5 + bias
    kept = bias > -1e30  # removed keys keep their stand-in value, unscaled
    torch.testing.assert_close(seen["z"][kept], (z0 / lam.view(H, 1, 1))[kept])  # z₀·ε₀/ε


def test_hard_max_is_the_argmax_of_the_biased_logits() -> None:
    m, hj, _ = _converted("eager")
    x, bias = _inputs(3)
    with torch.no_grad(), hjplug.deform(hj, 0.0):
        got = hj(x, bias)
    want = _reference(m, x, bias, torch.zeros(H))  # HF: uniform over argmax of s/ε₀ + b
    torch.testing.assert_close(got.double(), want, atol=2e-6, rtol=1e-5)
    q, k, v = m.qkv(x)
    plain = v.gather(-2, (q @ k.transpose(-1, -2)).masked_fill(bias < -1e30, -1e9)
                     .argmax(-1, keepdim=True).expand(-1, -1, -1, D))
    assert (got - plain).abs().max() > 1e-2  # ignoring the finite bias would pick other keys


def test_fx_sweep_probe_holds_on_a_replayed_chain() -> None:
    """Replayed chains (no plain q·kᵀ) are swept too: the fixed-input probe rescales z."""
    _, hj, _ = _converted("baddbmm")
    res = hjplug.sweep(hj, _inputs(4), [0.5, 1.0, 2.0], folds=False)
    assert res.ok and res.checked > 0
    assert torch.isfinite(res.normalized_entropy[:, 0, 0]).all()
    assert bool((res.normalized_entropy[1:, 0, 0] >= res.normalized_entropy[:-1, 0, 0]).all())
