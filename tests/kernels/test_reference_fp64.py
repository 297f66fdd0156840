"""The PyTorch reference twins against fp64 evaluations of hjplug.math (materialised softmax)."""

from __future__ import annotations

import itertools

import pytest
import torch
from _kernel_fp64 import attention_fp64

from hjplug.kernels.reference.entropy_sweep import entropy_sweep
from hjplug.kernels.reference.hj_attention import hj_attention
from hjplug.kernels.reference.hopf_cole import hopf_cole
from hjplug.math import entropy, lse, lse_grad

CASES = list(itertools.product((1, 37, 129), (32, 96), (False, True), (False, True)))


@pytest.mark.parametrize(("S", "D", "causal", "with_bias"), CASES)
def test_attention_reference_matches_fp64(S, D, causal, with_bias):
    g = torch.Generator().manual_seed(S * 1000 + D)
    q = torch.randn(2, 4, S, D, generator=g, dtype=torch.float64)
    k = torch.randn(2, 2, S, D, generator=g, dtype=torch.float64)  # GQA: 4 query heads, 2 kv
    v = torch.randn(2, 2, S, D, generator=g, dtype=torch.float64)
    bias = torch.randn(1, 4, S, S, generator=g, dtype=torch.float64) if with_bias else None
    r = hj_attention(q, k, v, causal=causal, bias=bias, topk=2 if S > 1 else 0, chunk=16)
    e = attention_fp64(q, k, v, causal=causal, bias=bias, topk=2 if S > 1 else 0)
    torch.testing.assert_close(r.out, e[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(r.lse, e[1], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(r.entropy, e[2], rtol=1e-9, atol=1e-10)
    if S > 1:
        torch.testing.assert_close(r.topk_weights, e[3], rtol=1e-10, atol=1e-12)
        assert torch.equal(r.topk_indices, e[4])


@pytest.mark.parametrize(("sq", "sk", "causal", "window"),
                         [(5, 40, True, None), (40, 40, True, 7), (37, 50, False, 6),
                          (1, 129, True, 16)])
def test_attention_reference_kv_cache_and_window(sq, sk, causal, window):
    q = torch.randn(1, 2, sq, 32, dtype=torch.float64)
    k = torch.randn(1, 2, sk, 32, dtype=torch.float64)
    v = torch.randn(1, 2, sk, 32, dtype=torch.float64)
    r = hj_attention(q, k, v, causal=causal, window=window, chunk=8)
    e = attention_fp64(q, k, v, causal=causal, window=window)
    for a, b in zip(r[:3], e, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_attention_reference_fp32_and_bool_mask():
    q, k, v = (torch.randn(1, 2, 33, 32) for _ in range(3))
    keep = torch.rand(1, 1, 33, 33) > 0.3
    keep[..., 0] = True  # every row keeps a key
    r = hj_attention(q, k, v, bias=keep, chunk=10)
    e = attention_fp64(q, k, v, bias=keep)
    torch.testing.assert_close(r.out.double(), e[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r.entropy.double(), e[2], rtol=1e-5, atol=1e-5)
    assert r.lse.dtype == torch.float32


def test_fully_masked_rows_give_zero_out_minus_inf_lse_zero_entropy():
    q = torch.randn(1, 1, 6, 32)
    k = torch.randn(1, 1, 3, 32)
    r = hj_attention(q, k, k.clone(), causal=True, topk=2)  # Sq > Sk: top rows see no key
    assert torch.equal(r.out[0, 0, :3], torch.zeros(3, 32))
    assert torch.isneginf(r.lse[0, 0, :3]).all() and torch.isfinite(r.lse[0, 0, 3:]).all()
    assert torch.equal(r.entropy[0, 0, :3], torch.zeros(3))
    assert (r.topk_indices[0, 0, :3] == -1).all() and (r.topk_weights[0, 0, :3] == 0).all()


def test_chunking_does_not_change_the_result():
    q, k, v = (torch.randn(2, 2, 70, 32, dtype=torch.float64) for _ in range(3))
    a = hj_attention(q, k, v, causal=True, topk=3, chunk=7)
    b = hj_attention(q, k, v, causal=True, topk=3)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eps", [0.05, 1.0, 7.0])
def test_hopf_cole_reference_matches_math(eps):
    x = torch.randn(37, 16, dtype=torch.float64)
    W = torch.randn(129, 16, dtype=torch.float64)
    b = torch.randn(129, dtype=torch.float64)
    r = hopf_cole(x, W, b, eps, topk=4, chunk=10)
    z = x @ W.T + b
    torch.testing.assert_close(r.value, lse(z, eps), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r.grad, lse_grad(x, W, b, eps), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(r.entropy, entropy(z, eps), rtol=1e-9, atol=1e-10)
    w, i = torch.softmax(z / eps, -1).topk(4, -1)
    torch.testing.assert_close(r.topk_weights, w, rtol=1e-10, atol=1e-12)
    assert torch.equal(r.topk_indices, i)


def test_entropy_sweep_reference_matches_math():
    z = torch.randn(3, 5, 129, dtype=torch.float64) * 4
    z[0, 0, 10:] = float("-inf")  # removed atoms
    eps = [0.01, 0.3, 1.0, 5.0]
    h = entropy_sweep(z, eps, chunk=16)
    ref = torch.stack([entropy(z, e) for e in eps], -1)
    torch.testing.assert_close(h, ref, rtol=1e-9, atol=1e-10)
    q = torch.randn(1, 4, 37, 32, dtype=torch.float64)
    k = torch.randn(1, 2, 50, 32, dtype=torch.float64)
    hq = entropy_sweep(None, eps, q=q, k=k, causal=True, chunk=16)
    s = (q @ k.repeat_interleave(2, 1).transpose(-1, -2))
    from _kernel_fp64 import visible

    s = s.masked_fill(~visible(37, 50, True, None), float("-inf"))
    torch.testing.assert_close(hq, torch.stack([entropy(s, e) for e in eps], -1),
                               rtol=1e-9, atol=1e-10)
