"""Public API, custom ops under torch.export, registry override and fallback warning, errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

import hjplug.kernels as K
from hjplug.errors import InvalidArgumentError
from hjplug.kernels import registry


@pytest.fixture(autouse=True)
def _clean_registry(monkeypatch):
    monkeypatch.delenv("HJPLUG_KERNEL", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    registry.reset_warnings()
    yield
    registry.reset_warnings()


def _qkv(S=9, D=32, H=2, Hk=2, dtype=torch.float32):
    return (torch.randn(1, H, S, D, dtype=dtype), torch.randn(1, Hk, S, D, dtype=dtype),
            torch.randn(1, Hk, S, D, dtype=dtype))


def test_import_is_light():
    code = ("import sys, hjplug.kernels as K; "
            "assert 'torch' not in sys.modules and 'triton' not in sys.modules; "
            "K.HJAttentionOutput; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


def test_public_api_shapes_and_records():
    q, k, v = _qkv(H=4, Hk=2)
    r = K.hj_attention(q, k, v, causal=True)
    assert isinstance(r, K.HJAttentionOutput)
    assert r.out.shape == q.shape and r.lse.shape == r.entropy.shape == q.shape[:3]
    assert r.topk_weights is None and r.topk_indices is None
    r = K.hj_attention(q, k, v, topk=3)
    assert r.topk_weights.shape == (*q.shape[:3], 3) and r.topk_indices.dtype == torch.long
    hc = K.hopf_cole(torch.randn(5, 8), torch.randn(11, 8), torch.randn(11), 0.5, topk=2)
    assert isinstance(hc, K.HopfColeOutput) and hc.grad.shape == (5, 8)
    assert K.entropy_sweep(torch.randn(3, 4, 10), [0.5, 1.0]).shape == (3, 4, 2)
    assert K.entropy_sweep(q=q, k=k, eps=[1.0, 2.0, 3.0]).shape == (1, 4, 9, 3)


def _graph_targets(module, args):
    ep = torch.export.export(module, args)
    return [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]


def test_custom_ops_are_single_nodes_under_export():
    class Attn(torch.nn.Module):
        def forward(self, q, k, v):
            r = K.hj_attention(q, k, v, causal=True, topk=2)
            return r.out, r.lse, r.entropy, r.topk_weights

    class HC(torch.nn.Module):
        def forward(self, x, W, b):
            return tuple(K.hopf_cole(x, W, b, 0.3)[:3])

    class Sweep(torch.nn.Module):
        def forward(self, z):
            return K.entropy_sweep(z, [0.5, 1.0, 2.0])

    t = _graph_targets(Attn(), _qkv())
    assert t.count("hjplug.hj_attention.default") == 1
    assert not any("softmax" in x or "bmm" in x or "matmul" in x for x in t)
    t = _graph_targets(HC(), (torch.randn(4, 8), torch.randn(6, 8), torch.randn(6)))
    assert t.count("hjplug.hopf_cole.default") == 1
    t = _graph_targets(Sweep(), (torch.randn(3, 10),))
    assert t.count("hjplug.entropy_sweep.default") == 1


def test_gradients_through_the_custom_op():
    q, k, v = (t.double().requires_grad_() for t in _qkv(S=5, D=4))
    bias = torch.randn(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    fn = lambda q, k, v, b: tuple(K.hj_attention(q, k, v, bias=b, causal=True, topk=2)[:4])
    assert torch.autograd.gradcheck(fn, (q, k, v, bias))
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    W = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, W, b: tuple(K.hopf_cole(x, W, b, 0.7)[:3]),
                                    (x, W, b))


def test_registry_default_and_override(monkeypatch):
    q, k, v = _qkv()
    c = K.backend_for("hj_attention", q, k, v)
    assert (c.backend, c.fallback) == ("reference", False)  # CPU: no warning, no fallback
    monkeypatch.setenv("HJPLUG_KERNEL", "reference")
    assert K.backend_for("hj_attention", q).reason == "HJPLUG_KERNEL=reference"
    monkeypatch.setenv("HJPLUG_KERNEL", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert K.backend_for("hj_attention", q, k, v, head_dim=32).backend == "triton"
    monkeypatch.setenv("HJPLUG_KERNEL", "fast")
    with pytest.raises(InvalidArgumentError, match="HJPLUG_KERNEL"):
        K.backend_for("hj_attention", q)


def test_fallback_warns_once_with_the_reason_and_gives_the_reference_answer(monkeypatch):
    monkeypatch.setenv("HJPLUG_KERNEL", "triton")  # asked for triton, CPU without interpreter
    q, k, v = _qkv()
    with pytest.warns(K.KernelFallbackWarning, match="TRITON_INTERPRET"):
        r = K.hj_attention(q, k, v, causal=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        K.hj_attention(q, k, v, causal=True)  # same reason: no second warning
    from hjplug.kernels.reference.hj_attention import hj_attention as ref

    e = ref(q, k, v, causal=True)
    torch.testing.assert_close(r.out, e.out)
    torch.testing.assert_close(r.entropy, e.entropy)


def test_unsupported_combination_falls_back_with_its_reason(monkeypatch):
    monkeypatch.setenv("HJPLUG_KERNEL", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    q, k, v = _qkv(dtype=torch.float64)
    with pytest.warns(K.KernelFallbackWarning, match="float64"):
        K.hj_attention(q, k, v)
    q, k, v = _qkv(D=160)
    with pytest.warns(K.KernelFallbackWarning, match="head dim 160"):
        K.hj_attention(q, k, v)


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(scale=0.0), "scale"), (dict(scale=float("nan")), "scale"), (dict(window=0), "window"),
    (dict(topk=-1), "topk"), (dict(bias=torch.zeros(3, 9)), "bias"),
])
def test_attention_argument_errors(kwargs, name):
    q, k, v = _qkv()
    with pytest.raises(InvalidArgumentError, match=name):
        K.hj_attention(q, k, v, **kwargs)


def test_shape_and_eps_errors():
    q, k, v = _qkv(H=3, Hk=2)
    with pytest.raises(InvalidArgumentError, match="head count"):
        K.hj_attention(q, k, v)
    with pytest.raises(InvalidArgumentError, match="4-D"):
        K.hj_attention(q[0], k, v)
    x, W, b = torch.randn(4, 8), torch.randn(6, 8), torch.randn(6)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidArgumentError, match="eps"):
            K.hopf_cole(x, W, b, bad)
    with pytest.raises(InvalidArgumentError, match="'b'"):
        K.hopf_cole(x, W, torch.randn(5), 1.0)
    with pytest.raises(InvalidArgumentError, match="eps"):
        K.entropy_sweep(torch.randn(3, 4), [1.0, 0.0])
    with pytest.raises(InvalidArgumentError, match="either logits"):
        K.entropy_sweep(torch.randn(3, 4), [1.0], q=q, k=k)


@pytest.mark.gpu
def test_triton_on_cuda_matches_reference():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from hjplug.kernels.reference.hj_attention import hj_attention as ref

    q, k, v = (t.cuda().half() for t in _qkv(S=300, D=64, H=4, Hk=2))
    assert K.backend_for("hj_attention", q, k, v, head_dim=64).backend == "triton"
    r = K.hj_attention(q, k, v, causal=True, topk=4)
    e = ref(q, k, v, causal=True, topk=4)
    torch.testing.assert_close(r.out, e.out, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(r.lse, e.lse, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(r.entropy, e.entropy, rtol=1e-3, atol=1e-3)
