"""torch.compile(fullgraph=True) through the fused backward: the backward is one custom op
(`hjplug::hj_attention_backward`, with a fake implementation), so AOTAutograd traces it as one
node and the compiled gradients equal the eager ones. Before it was an op, tracing the backward
failed on a data-dependent branch of the reference twin. Backend aot_eager: the AOTAutograd
tracing is what failed; inductor's code generation adds nothing here but seconds."""

from __future__ import annotations

import torch

from hjplug.kernels import api


def _grads(fn, leaves):
    return torch.autograd.grad(fn(*leaves), leaves)


def test_compiled_attention_backward_matches_eager() -> None:
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 33, 16, generator=g).requires_grad_(True) for _ in range(3))
    k2, v2 = k[:, :2].detach().requires_grad_(True), v[:, :2].detach().requires_grad_(True)
    bias = torch.randn(1, 1, 33, 33, generator=g).requires_grad_(True)

    def f(q, k, v, bias):
        r = api.hj_attention(q, k, v, causal=True, bias=bias, topk=2)
        return (r.out.square().sum() + (r.entropy * torch.arange(33.0)).sum()
                + r.lse.sum() + r.topk_weights.sum())

    eager = _grads(f, [q, k2, v2, bias])
    compiled = _grads(torch.compile(f, fullgraph=True, backend="aot_eager"), [q, k2, v2, bias])
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_compiled_hopf_cole_backward_matches_eager() -> None:
    torch._dynamo.reset()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 16, generator=g).requires_grad_(True)
    W = torch.randn(40, 16, generator=g).requires_grad_(True)
    b = torch.randn(40, generator=g).requires_grad_(True)

    def f(x, W, b):
        r = api.hopf_cole(x, W, b, 0.5)
        return r.value.sum() + r.entropy.square().sum() + r.grad.sum()

    eager = _grads(f, [x, W, b])
    compiled = _grads(torch.compile(f, fullgraph=True, backend="aot_eager"), [x, W, b])
    for a, b_ in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b_, rtol=1e-5, atol=1e-6)
