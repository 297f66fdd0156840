"""Every Triton kernel under TRITON_INTERPRET=1 against its reference twin, fp32, awkward shapes.

Runs only when TRITON_INTERPRET=1 was set before the process started (then the kernels are
decorated as interpreted functions); otherwise tests/kernels/test_interpreter_subprocess.py
runs this directory in a fresh subprocess with the variable set, so nothing leaks into the rest
of the suite and no earlier triton import can defeat it. The interpreter cannot multiply bf16
(numpy has none): bf16 is checked on GPU by benchmarks/gpu_check.py; fp16 runs here.
"""

from __future__ import annotations

import itertools
import os

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")

from hjplug.kernels.reference.entropy_sweep import entropy_sweep as sweep_ref  # noqa: E402
from hjplug.kernels.reference.hj_attention import hj_attention as attn_ref  # noqa: E402
from hjplug.kernels.reference.hopf_cole import hopf_cole as hc_ref  # noqa: E402

TOL = dict(rtol=2e-5, atol=2e-5)


def _attn(S, D, causal, bias, *, Sk=None, H=2, Hk=1, window=-1, topk=0, splits=None,
          dtype=torch.float32, seed=0):
    from hjplug.kernels.triton import hj_attention as hja

    g = torch.Generator().manual_seed(seed)
    Sk = S if Sk is None else Sk
    q = torch.randn(1, H, S, D, generator=g).to(dtype)  # H = 2·Hk: grouped-query by default
    k = torch.randn(1, Hk, Sk, D, generator=g).to(dtype)
    v = torch.randn(1, Hk, Sk, D, generator=g).to(dtype)
    b = torch.randn(1, H, S, Sk, generator=g) if bias == "full" else (
        torch.randn(1, 1, 1, Sk, generator=g) if bias == "row" else None)
    hja.POISON = True  # outputs start as NaN: any element the kernel misses shows
    try:
        got = hja.hj_attention_fwd(q, k, v, b, D ** -0.5, causal, window, topk, splits=splits)
    finally:
        hja.POISON = False
    ref = attn_ref(q, k, v, causal=causal, bias=b, window=None if window < 0 else window,
                   topk=topk, chunk=16)
    return got, ref


def _close(got, ref, tol=TOL):
    o, lse, ent, tw, ti = got
    torch.testing.assert_close(o.float(), ref.out.float(), **tol)
    torch.testing.assert_close(lse, ref.lse, **tol)
    torch.testing.assert_close(ent, ref.entropy, **tol)
    if ref.topk_weights is not None:
        torch.testing.assert_close(tw, ref.topk_weights, **tol)
        assert torch.equal(ti, ref.topk_indices)


@pytest.mark.parametrize(("S", "D", "causal", "bias"),
                         list(itertools.product((1, 37, 129), (32, 96), (False, True),
                                                (None, "full"))))
def test_attention_matches_reference(S, D, causal, bias):
    _close(*_attn(S, D, causal, bias, seed=S + D))


@pytest.mark.parametrize(("S", "Sk", "causal", "window", "topk", "bias"), [
    (37, 37, True, 5, 0, None),      # sliding window, causal
    (37, 50, False, 7, 0, None),     # two-sided window, Sq < Sk
    (129, 129, True, 40, 3, "row"),  # window + top-k + per-key bias row
    (5, 129, True, -1, 4, None),     # decode with a KV cache (bottom-right causal)
    (50, 37, True, -1, 2, None),     # Sq > Sk: top rows see no key
    (37, 37, False, -1, 5, "row"),
])
def test_attention_window_cache_topk(S, Sk, causal, window, topk, bias):
    _close(*_attn(S, 32, causal, bias, Sk=Sk, window=window, topk=topk, seed=S * Sk))


@pytest.mark.parametrize(("S", "Sk", "causal", "topk"), [(1, 129, True, 3), (37, 129, False, 0),
                                                         (20, 129, True, 2)])
def test_attention_split_keys_merge(S, Sk, causal, topk):
    _close(*_attn(S, 32, causal, None, Sk=Sk, topk=topk, splits=3, seed=7))


def test_attention_gqa_one_kv_head_and_fp16():
    _close(*_attn(37, 32, True, None, H=4, Hk=1, seed=3))  # 4 query heads share one kv head
    got, ref = _attn(37, 64, True, None, dtype=torch.float16, seed=4)
    _close(got, ref, tol=dict(rtol=2e-3, atol=2e-3))


def test_attention_public_path_uses_triton(monkeypatch):
    import hjplug.kernels as K

    monkeypatch.setenv("HJPLUG_KERNEL", "triton")
    q, k, v = (torch.randn(1, 2, 37, 32) for _ in range(3))
    assert K.backend_for("hj_attention", q, k, v, head_dim=32).backend == "triton"
    r = K.hj_attention(q, k, v, causal=True, window=9, topk=2)
    e = attn_ref(q, k, v, causal=True, window=9, topk=2)
    for a, b in zip(r, e, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_attention_backward_matches_reference():
    from hjplug.kernels.triton.hj_attention import hj_attention as tri

    q, k, v = (torch.randn(1, 2, 37, 32, dtype=torch.float32, requires_grad=True)
               for _ in range(3))
    r = tri(q, k, v, causal=True)
    (r.out.sum() + r.entropy.sum() + r.lse.sum()).backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    e = attn_ref(q, k, v, causal=True)
    (e.out.sum() + e.entropy.sum() + e.lse.sum()).backward()
    for a, t in zip(grads, (q, k, v), strict=True):
        torch.testing.assert_close(a, t.grad, **TOL)


@pytest.mark.parametrize(("M", "N", "d", "eps", "topk", "splits"),
                         [(37, 129, 32, 0.3, 0, None), (1, 129, 96, 2.0, 3, None),
                          (37, 129, 32, 1.0, 4, 3), (129, 37, 16, 0.05, 0, None)])
def test_hopf_cole_matches_reference(M, N, d, eps, topk, splits):
    from hjplug.kernels.triton import hj_attention as hja
    from hjplug.kernels.triton.hopf_cole import hopf_cole_fwd

    g = torch.Generator().manual_seed(M + N)
    x, W, b = torch.randn(M, d, generator=g), torch.randn(N, d, generator=g), torch.randn(N)
    hja.POISON = True
    try:
        val, grad, ent, tw, ti = hopf_cole_fwd(x, W, b, eps, topk, precision="ieee",
                                               splits=splits)
    finally:
        hja.POISON = False
    r = hc_ref(x, W, b, eps, topk=topk, chunk=16)
    tol = dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(val, r.value, **tol)
    torch.testing.assert_close(grad, r.grad, **tol)
    torch.testing.assert_close(ent, r.entropy, **tol)
    if topk:
        torch.testing.assert_close(tw, r.topk_weights, **tol)
        assert torch.equal(ti, r.topk_indices)


@pytest.mark.parametrize("method", ["kouter", "online"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7, 37), (129, 129)])
def test_entropy_sweep_logits_matches_reference(shape, method):
    from hjplug.kernels.triton import hj_attention as hja
    from hjplug.kernels.triton.entropy_sweep import entropy_sweep_fwd

    z = torch.randn(shape) * 3
    if z.numel() > 40:
        z.view(-1, shape[-1])[0, 5:] = float("-inf")  # removed atoms
    eps = torch.tensor([0.01, 0.1, 0.5, 1.0, 3.0])
    hja.POISON = True
    try:
        got = entropy_sweep_fwd(z, eps, method=method)
    finally:
        hja.POISON = False
    torch.testing.assert_close(got, sweep_ref(z, eps, chunk=16), **TOL)


@pytest.mark.parametrize(("S", "Sk", "causal"), [(1, 37, True), (37, 37, True), (37, 129, False)])
def test_entropy_sweep_qk_matches_reference(S, Sk, causal):
    from hjplug.kernels.triton.entropy_sweep import entropy_sweep_fwd

    q = torch.randn(1, 4, S, 32)
    k = torch.randn(1, 2, Sk, 32)
    eps = torch.tensor([0.5, 2.0, 5.66])
    got = entropy_sweep_fwd(None, eps, q=q, k=k, causal=causal)
    torch.testing.assert_close(got, sweep_ref(None, eps, q=q, k=k, causal=causal, chunk=16),
                               rtol=1e-4, atol=1e-4)


def test_hopf_cole_tf32_path_equals_reference_on_rounded_inputs():
    """fp32 + tf32: inputs are rounded to nearest tf32 once (the MMA truncates); in the
    interpreter the products are then exact, so the reference on rounded inputs agrees."""
    from hjplug.kernels.triton.hopf_cole import hopf_cole_fwd, round_tf32

    x, W, b = torch.randn(37, 32), torch.randn(129, 32), torch.randn(129)
    val, grad, ent, _, _ = hopf_cole_fwd(x, W, b, 0.5, 0, precision="tf32")
    r = hc_ref(round_tf32(x), round_tf32(W), b, 0.5)
    torch.testing.assert_close(val, r.value, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, r.grad, rtol=2e-3, atol=2e-3)  # p rounded to tf32 too
    torch.testing.assert_close(ent, r.entropy, rtol=1e-4, atol=1e-4)
    t = torch.tensor([1.0, 1 + 2.0**-11, 1 + 2.0**-10 + 2.0**-12, -3.0, 0.0])
    assert torch.equal(round_tf32(t), torch.tensor([1.0, 1 + 2.0**-10, 1 + 2.0**-10, -3.0, 0.0]))
