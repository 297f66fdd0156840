"""Backward dispatch under TRITON_INTERPRET=1 with HJPLUG_KERNEL=triton: the backward uses the
forward's precision (a Hopf–Cole forward that fell back to the exact reference for top-k > 32
must not get a tf32 backward), and one tensor as keys and values takes the kv_same path."""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")

from hjplug.kernels import api  # noqa: E402


def _hc_grads(monkeypatch, mode: str, topk: int):
    monkeypatch.setenv("HJPLUG_KERNEL", mode)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9, 32, generator=g).requires_grad_(True)
    W = (torch.randn(50, 32, generator=g) / 32 ** 0.5).requires_grad_(True)
    b = torch.randn(50, generator=g).requires_grad_(True)
    r = api.hopf_cole(x, W, b, 0.7, topk=topk)
    loss = r.value.sum() + r.entropy.square().sum() + r.topk_weights.sum()
    return torch.autograd.grad(loss, [x, W, b])


def test_hopf_cole_backward_follows_the_forward_precision(monkeypatch) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the forward's fallback warning (top-k > 32)
        got = _hc_grads(monkeypatch, "triton", 40)
    want = _hc_grads(monkeypatch, "reference", 40)
    for a, w in zip(got, want, strict=True):  # exact fp32 both ways (tf32 would be ~5e-3)
        assert float((a - w).abs().max() / w.abs().max()) < 2e-5


def test_one_tensor_as_keys_and_values_on_triton(monkeypatch) -> None:
    monkeypatch.setenv("HJPLUG_KERNEL", "triton")
    g = torch.Generator().manual_seed(4)
    q = torch.randn(1, 2, 21, 32, generator=g).requires_grad_(True)
    x = torch.randn(1, 2, 21, 32, generator=g).requires_grad_(True)
    r = api.hj_attention(q, x, x, causal=True)
    (gx,) = torch.autograd.grad(r.out.sum() + r.entropy.sum(), [x])
    monkeypatch.setenv("HJPLUG_KERNEL", "reference")
    k, v = x.detach().clone().requires_grad_(True), x.detach().clone().requires_grad_(True)
    r2 = api.hj_attention(q, k, v, causal=True)
    gk, gv = torch.autograd.grad(r2.out.sum() + r2.entropy.sum(), [k, v])
    torch.testing.assert_close(gx, gk + gv, rtol=2e-5, atol=2e-5)
