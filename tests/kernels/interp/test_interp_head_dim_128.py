"""Head dim D = 128 (registry.MAX_HEAD_DIM, the largest the Triton kernels accept) under
TRITON_INTERPRET=1: forward (outputs poisoned, so every element must be written) and the fused
backward against the reference twins in fp32, with a full float bias, causal and not.

Run by tests/kernels/test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start).
"""

from __future__ import annotations

import os

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")

from hjplug.kernels import registry  # noqa: E402
from hjplug.kernels.reference.hj_attention import hj_attention as attn_ref  # noqa: E402
from hjplug.kernels.reference.hj_attention import hj_attention_parts as attn_parts  # noqa: E402
from hjplug.kernels.reference.hj_attention_bwd import hj_attention_bwd as bwd_ref  # noqa: E402
from hjplug.kernels.reference.hj_attention_bwd import row_terms  # noqa: E402

B, H, HK, SQ, SK, D = 1, 2, 1, 37, 45, 128  # grouped-query: both query heads share one kv head
TOL = dict(rtol=2e-5, atol=2e-5)
REL = 2e-5  # backward: relative to the largest |gradient| of the twin


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, SQ, D, generator=g)
    k = torch.randn(B, HK, SK, D, generator=g)
    v = torch.randn(B, HK, SK, D, generator=g)
    bias = torch.randn(B, H, SQ, SK, generator=g)
    return q, k, v, bias, g


def test_head_dim_128_is_within_the_kernel_limit():
    assert registry.MAX_HEAD_DIM >= D


@pytest.mark.parametrize(("causal", "topk"), [(False, 0), (True, 3)])
def test_forward_head_dim_128_matches_twin(causal, topk):
    from hjplug.kernels.triton import hj_attention as hja

    q, k, v, bias, _ = _inputs(128 + causal)
    hja.POISON = True  # outputs start as NaN / −7: any element the kernel misses shows
    try:
        out, lse, ent, tw, ti = hja.hj_attention_fwd(q, k, v, bias, D ** -0.5, causal, -1, topk)
    finally:
        hja.POISON = False
    r = attn_ref(q, k, v, causal=causal, bias=bias, topk=topk, chunk=16)
    assert out.shape == (B, H, SQ, D)
    torch.testing.assert_close(out, r.out, **TOL)
    torch.testing.assert_close(lse, r.lse, **TOL)
    torch.testing.assert_close(ent, r.entropy, **TOL)
    if topk:
        torch.testing.assert_close(tw, r.topk_weights, **TOL)
        assert torch.equal(ti.long(), r.topk_indices)


@pytest.mark.parametrize("causal", [False, True])
def test_backward_head_dim_128_matches_twin(causal):
    from hjplug.kernels.triton.hj_attention_bwd import hj_attention_bwd as bwd_tri

    q, k, v, bias, g = _inputs(256 + causal)
    sc = D ** -0.5
    r, pa = attn_parts(q, k, v, scale=sc, causal=causal, bias=bias, chunk=16)
    g_out = torch.randn(r.out.shape, generator=g)
    g_lse = torch.randn(r.lse.shape, generator=g)
    g_ent = torch.randn(r.lse.shape, generator=g)
    c, gh = row_terms(r.out, pa, r.entropy, g_out, g_lse, g_ent)
    args = (q, k, v, bias, sc, causal, -1, pa, g_out, c, gh, True)
    got, want = bwd_tri(*args), bwd_ref(*args, chunk=16)
    for n, a, w in zip(("dq", "dk", "dv", "dbias"), got, want, strict=True):
        assert a is not None and a.shape == w.shape and a.dtype == w.dtype, n
        assert torch.isfinite(a).all(), f"{n}: non-finite"
        err, tol = float((a - w).abs().max()), REL * float(w.abs().max())
        assert err <= tol, f"{n}: max |error| {err:.3e} > {tol:.3e}"


def test_public_path_head_dim_128_runs_triton_and_matches_reference(monkeypatch):
    """hjplug.kernels.hj_attention with HJPLUG_KERNEL=triton at D = 128 (HF-layout strided
    q/k/v): the Triton forward and backward run (no fallback), and values and gradients equal
    the reference run's."""
    import hjplug.kernels as K
    import hjplug.kernels.triton.hj_attention as hja
    import hjplug.kernels.triton.hj_attention_bwd as hjb

    calls = []

    def spy(mod, name):
        real = getattr(mod, name)

        def f(*a, **kw):
            calls.append((name, a[0].shape[-1]))
            return real(*a, **kw)

        monkeypatch.setattr(mod, name, f)

    spy(hja, "hj_attention_fwd_parts")
    spy(hjb, "hj_attention_bwd")
    g = torch.Generator().manual_seed(7)
    leaves = [torch.randn(B, s, h, D, generator=g).transpose(1, 2)
              for s, h in ((SQ, H), (SK, HK), (SK, HK))] + [torch.randn(B, H, SQ, SK, generator=g)]
    ups = [torch.randn(B, H, SQ, D, generator=g), torch.randn(B, H, SQ, generator=g)]
    res = {}
    for mode in ("triton", "reference"):
        monkeypatch.setenv("HJPLUG_KERNEL", mode)
        registry.reset_warnings()
        xs = [t.detach().clone().requires_grad_(True) for t in leaves]
        r = K.hj_attention(xs[0], xs[1], xs[2], causal=True, bias=xs[3])
        loss = (r.out * ups[0]).sum() + (r.entropy * ups[1]).sum()
        res[mode] = (r.out, r.lse, r.entropy, *torch.autograd.grad(loss, xs))
    assert calls == [("hj_attention_fwd_parts", D), ("hj_attention_bwd", D)]
    for n, a, w in zip(("out", "lse", "entropy", "dq", "dk", "dv", "dbias"), res["triton"],
                       res["reference"], strict=True):
        torch.testing.assert_close(a, w, rtol=1e-4, atol=1e-5, msg=lambda m, n=n: f"{n}: {m}")
