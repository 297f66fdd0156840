"""torch.library.opcheck on the three forward custom ops (hjplug::hj_attention,
hjplug::hopf_cole, hjplug::entropy_sweep) on the CPU reference path, with strided (HF-layout)
inputs, bool masks, float biases, fp32 / fp64 and top-k > 0; and each op's outputs against a
dense, independent evaluation (full softmax in fp64), so a wrong-but-consistent op fails too.
"""

from __future__ import annotations

import math

import pytest
import torch

from hjplug.kernels import ops

F32, F64 = torch.float32, torch.float64
TOL = {F32: dict(rtol=2e-5, atol=2e-5), F64: dict(rtol=1e-10, atol=1e-11)}


@pytest.fixture(autouse=True)
def _reference_backend(monkeypatch):
    monkeypatch.setenv("HJPLUG_KERNEL", "reference")


# ------------------------------------------------------------------------ dense evaluations
def _visible(Sq: int, Sk: int, causal: bool, window: int) -> torch.Tensor:
    """[Sq, Sk] bool: query i (absolute position i + Sk − Sq) sees key j."""
    i = torch.arange(Sq).unsqueeze(1) + (Sk - Sq)
    j = torch.arange(Sk).unsqueeze(0)
    ok = torch.ones(Sq, Sk, dtype=torch.bool)
    if causal:
        ok &= j <= i
    if window > 0:
        ok &= j > i - window
        if not causal:
            ok &= j < i + window
    return ok


def _softmax_stats(s: torch.Tensor, topk: int):
    """p, lse, entropy (−Σ p log p), top-k of p over the last axis of fp64 scores s (a slot of
    weight 0, a removed key or k past the visible keys, has index −1: kernels/reference/topk.py)."""
    lse = torch.logsumexp(s, -1)
    p = torch.exp(s - lse.unsqueeze(-1))
    ent = -torch.xlogy(p, p).sum(-1)
    tw, ti = p.topk(topk, -1) if topk else (None, None)
    if ti is not None:
        ti = ti.masked_fill(tw == 0, -1)
    return p, lse, ent, tw, ti


def _dense_attention(q, k, v, bias, scale, causal, window, topk):
    g = q.shape[1] // k.shape[1]
    qd, kd, vd = (t.to(F64) for t in (q, k, v))
    kd, vd = kd.repeat_interleave(g, 1), vd.repeat_interleave(g, 1)  # head h uses kv head h//g
    s = scale * qd @ kd.transpose(-1, -2)
    if bias is not None:
        s = s.masked_fill(~bias, -math.inf) if bias.dtype == torch.bool else s + bias.to(F64)
    s = s.masked_fill(~_visible(q.shape[2], k.shape[2], causal, window), -math.inf)
    p, lse, ent, tw, ti = _softmax_stats(s, topk)
    return p @ vd, lse, ent, tw, ti


def _check(got, want, dtype, names):
    for n, a, w in zip(names, got, want, strict=False):
        if w is None:
            continue
        if w.dtype == torch.long:
            assert torch.equal(a, w), n
        else:
            assert a.dtype == (dtype if dtype == F64 else F32), (n, a.dtype)
            torch.testing.assert_close(a.to(F64), w, **TOL[dtype], msg=lambda m, n=n: f"{n}: {m}")


# ------------------------------------------------------------------------------- hj_attention
def _attn_cases():
    g = torch.Generator().manual_seed(0)
    B, H, Hk, Sq, Sk, D = 2, 4, 2, 7, 9, 16
    cases = []
    for dtype in (F32, F64):
        # HF layout [B, S, H, D] seen as [B, H, S, D]: non-contiguous q / k / v
        q = torch.randn(B, Sq, H, D, generator=g).to(dtype).transpose(1, 2)
        k = torch.randn(B, Sk, Hk, D, generator=g).to(dtype).transpose(1, 2)
        v = torch.randn(B, Sk, Hk, D, generator=g).to(dtype).transpose(1, 2)
        keep = torch.rand(B, 1, Sq, Sk, generator=g) > 0.35
        keep[..., 0] = True  # a visible key in every row (also under causal, Sk ≥ Sq)
        fbias = torch.randn(B, H, Sk, Sq, generator=g).to(dtype).transpose(-1, -2)  # strided
        row = torch.randn(B, 1, 1, Sk, generator=g).to(dtype)
        cases += [
            (q, k, v, None, 0.25, True, -1, 0),
            (q, k, v, keep, 0.25, False, 3, 2),
            (q, k, v, fbias, D ** -0.5, True, -1, 3),
            (q, k, v, row, 0.3, False, -1, 5),
            (q.contiguous(), k.contiguous(), v.contiguous(), fbias, 0.4, True, 4, 9),  # k = Sk
        ]
    return cases


@pytest.mark.parametrize("args", _attn_cases(),
                         ids=lambda a: f"{a[0].dtype}-bias{None if a[3] is None else a[3].dtype}"
                                       f"-c{int(a[5])}-w{a[6]}-k{a[7]}")
def test_hj_attention_forward_opcheck_and_values(args):
    torch.library.opcheck(ops.hj_attention_op, args)
    got = ops.hj_attention_op(*args)
    q, _, _, _, _, _, _, topk = args
    B, H, Sq, _ = q.shape
    assert got[3].shape == (B, H, Sq, topk) and got[4].shape == (B, H, Sq, topk)
    assert got[4].dtype == torch.long
    _check(got, _dense_attention(*args), q.dtype, ("out", "lse", "entropy", "tw", "ti"))


def _dense_attention_differentiable(q, k, v, bias, scale, causal, topk):
    """_dense_attention without −inf scores (masked entries replaced before any arithmetic), so
    its autograd gradients are finite."""
    g = q.shape[1] // k.shape[1]
    kd, vd = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    vis = _visible(q.shape[2], k.shape[2], causal, -1)
    s = torch.where(vis, scale * q @ kd.transpose(-1, -2) + bias, 0.0)
    lse = torch.logsumexp(s.masked_fill(~vis, -math.inf), -1)
    p = torch.where(vis, torch.exp(s - lse.unsqueeze(-1)), 0.0)
    ent = -(p * (s - lse.unsqueeze(-1))).sum(-1)
    return p @ vd, lse, ent, p.topk(topk, -1).values


def test_hj_attention_opcheck_with_grad_inputs():
    """opcheck's autograd-registration and AOT checks run the backward when inputs need grad;
    then the op's gradients (all four outputs used) against autograd through the dense form."""
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 5, 2, 8, generator=g, dtype=F64).transpose(1, 2).requires_grad_(True)
    k = torch.randn(1, 6, 2, 8, generator=g, dtype=F64).transpose(1, 2).requires_grad_(True)
    v = torch.randn(1, 6, 2, 8, generator=g, dtype=F64).transpose(1, 2).requires_grad_(True)
    b = torch.randn(1, 2, 5, 6, generator=g, dtype=F64, requires_grad=True)
    args = (q, k, v, b, 0.3, True, -1, 2)
    torch.library.opcheck(ops.hj_attention_op, args)
    got = ops.hj_attention_op(*args)
    want = _dense_attention_differentiable(q, k, v, b, 0.3, True, 2)
    ups = [torch.randn(w.shape, generator=g, dtype=F64) for w in want]
    gg = torch.autograd.grad(sum((o * u).sum() for o, u in zip(got[:4], ups, strict=True)),
                             [q, k, v, b])
    gw = torch.autograd.grad(sum((o * u).sum() for o, u in zip(want, ups, strict=True)),
                             [q, k, v, b])
    for n, a, w in zip(("dq", "dk", "dv", "dbias"), gg, gw, strict=True):
        torch.testing.assert_close(a, w, rtol=1e-9, atol=1e-10, msg=lambda m, n=n: f"{n}: {m}")


# ---------------------------------------------------------------------------------- hopf_cole
def _dense_hopf_cole(x, W, b, eps, topk):
    z = (x.to(F64) @ W.to(F64).T + b.to(F64)) / eps
    p, lse, ent, tw, ti = _softmax_stats(z, topk)
    return eps * lse, p @ W.to(F64), ent, tw, ti


def _hc_cases():
    g = torch.Generator().manual_seed(1)
    cases = []
    for dtype in (F32, F64):
        x = torch.randn(16, 5, generator=g).to(dtype).T  # [5, 16], non-contiguous
        W = torch.randn(11, 16, generator=g).to(dtype)
        b = torch.randn(11, generator=g).to(dtype)
        cases += [(x, W, b, 0.5, 0), (x.contiguous(), W, b, 0.5, 3), (x, W, b, 2.0, 11)]
    return cases


@pytest.mark.parametrize("args", _hc_cases(),
                         ids=lambda a: f"{a[0].dtype}-eps{a[3]}-k{a[4]}")
def test_hopf_cole_forward_opcheck_and_values(args):
    torch.library.opcheck(ops.hopf_cole_op, args)
    got = ops.hopf_cole_op(*args)
    x, topk = args[0], args[4]
    assert got[1].shape == x.shape and got[3].shape == (x.shape[0], topk)
    _check(got, _dense_hopf_cole(*args), x.dtype, ("value", "grad", "entropy", "tw", "ti"))


# ------------------------------------------------------------------------------ entropy_sweep
def _dense_sweep(logits, eps, q, k, causal):
    if logits is not None:
        z = logits.to(F64)
    else:
        g = q.shape[1] // k.shape[1]
        z = q.to(F64) @ k.to(F64).repeat_interleave(g, 1).transpose(-1, -2)
        z = z.masked_fill(~_visible(q.shape[2], k.shape[2], causal, -1), -math.inf)
    return torch.stack([_softmax_stats(z / e, 0)[2] for e in eps], -1)


def _sweep_cases():
    g = torch.Generator().manual_seed(2)
    cases = []
    for dtype in (F32, F64):
        z = torch.randn(3, 10, 4, generator=g).to(dtype).transpose(-1, -2)  # [3, 4, 10] strided
        zi = z.clone()
        zi[0, 1, 3:] = -math.inf  # removed atoms
        q = torch.randn(1, 7, 4, 16, generator=g).to(dtype).transpose(1, 2)
        k = torch.randn(1, 9, 2, 16, generator=g).to(dtype).transpose(1, 2)
        cases += [(z, [0.5, 1.0, 4.0], None, None, False), (zi, [0.1, 2.0], None, None, False),
                  (None, [1.0, 4.0, 16.0], q, k, True), (None, [4.0], q, k, False)]
    return cases


@pytest.mark.parametrize("args", _sweep_cases(),
                         ids=lambda a: f"{(a[0] if a[0] is not None else a[2]).dtype}"
                                       f"-{'logits' if a[0] is not None else 'qk'}-c{int(a[4])}")
def test_entropy_sweep_opcheck_and_values(args):
    torch.library.opcheck(ops.entropy_sweep_op, args)
    got = ops.entropy_sweep_op(*args)
    src = args[0] if args[0] is not None else args[2]
    assert got.shape == (*src.shape[:-1], len(args[1]))
    _check((got,), (_dense_sweep(*args),), src.dtype, ("entropies",))
