"""Extreme-value cases shared by test_extreme_values.py (reference twins, CPU) and
interp/test_interp_extreme_values.py (Triton kernels under TRITON_INTERPRET=1): forward and
backward of the public ops against an fp64 dense evaluation (materialised, shift-invariant
softmax, autograd-safe at −inf), run with HJPLUG_KERNEL = the given backend."""

from __future__ import annotations

import math

import torch
from _kernel_fp64 import visible as _visible
from torch import Tensor

from hjplug.kernels import api

FMIN = torch.finfo(torch.float32).min
LOG2E = 1.0 / math.log(2.0)
LN2 = math.log(2.0)


def _lse(s: Tensor) -> Tensor:
    """log Σ_j e^{s_j} with the max detached: its gradient is softmax(s) even where fp64 rounds
    lse to the max (|lse| ≫ log n: torch.logsumexp's backward e^{s − lse} then gives 1 per key,
    as a backward from the rounded lse would)."""
    mx = s.amax(-1, keepdim=True).detach()
    return (mx + (s - mx).exp().sum(-1, keepdim=True).log()).squeeze(-1)


def attention_dense(q, k, v, scale, bias=None, causal=False, window=None):
    """(out, lse, H) in fp64; rows with no visible key: 0, −inf, 0 (and no NaN gradient)."""
    q, k, v = q.double(), k.double(), v.double()
    s = (q @ k.transpose(-1, -2)) * scale
    if bias is not None:
        s = s.masked_fill(~bias, -math.inf) if bias.dtype == torch.bool else s + bias.double()
    s = s.masked_fill(~_visible(s.shape[-2], s.shape[-1], causal, window), -math.inf)
    vis = s > -math.inf
    row = vis.any(-1, keepdim=True)
    s0 = torch.where(row, s, 0.0)
    lp = torch.log_softmax(s0, -1)
    lp0 = torch.where(vis, lp, 0.0)
    p = torch.where(vis & row, lp0.exp(), 0.0)
    out = p @ v
    lse = torch.where(row.squeeze(-1), _lse(s0), -math.inf)
    ent = -(p * lp0).sum(-1)
    return out, lse, ent


def hopf_cole_dense(x, W, b, eps):
    z = (x.double() @ W.double().T + b.double()) / eps
    vis = z > -math.inf
    lp = torch.log_softmax(z, -1)
    lp0 = torch.where(vis, lp, 0.0)
    p = torch.where(vis, lp0.exp(), 0.0)
    return _lse(z) * eps, p @ W.double(), -(p * lp0).sum(-1)


def sweep_dense(z: Tensor, eps) -> Tensor:
    z = z.double()
    out = []
    for e in eps:
        lp = torch.log_softmax(z / e, -1)
        p = lp.exp()
        out.append(-torch.where(p > 0, p * lp, 0.0).sum(-1))
    return torch.stack(out, -1)


def rel(a: Tensor, b: Tensor) -> float:
    """Norm-wise relative error of a against the fp64 truth b (non-finite entries must agree)."""
    a, b = a.detach().double(), b.detach().double()
    assert torch.equal(torch.isnan(a), torch.isnan(b)), (a, b)
    fin = torch.isfinite(b)
    assert torch.equal(torch.isfinite(a), fin), (a, b)
    assert torch.equal(a[~fin & ~torch.isnan(b)], b[~fin & ~torch.isnan(b)])
    d = (a - b)[fin].norm()
    n = b[fin].norm()
    return float(d / n) if n > 0 else float(d)


def attention_grads(q, k, v, scale, bias=None, causal=False, window=None, seed=0):
    """(forward outputs, kernel grads, fp64 truth, truth grads) for random upstream grads."""
    ins = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    bb = None
    if bias is not None:
        bb = bias.detach().clone().requires_grad_(bias.is_floating_point())
    r = api.hj_attention(*ins, scale=scale, causal=causal, bias=bb, window=window)
    gen = torch.Generator().manual_seed(seed)
    g = [torch.randn(t.shape, generator=gen) for t in (r.out, r.lse, r.entropy)]
    g[1] = torch.where(torch.isfinite(r.lse), g[1], 0.0)
    wrt = ins + ([bb] if bb is not None and bb.requires_grad else [])
    G = torch.autograd.grad([r.out, r.lse, r.entropy], wrt, g)
    ind = [t.detach().double().requires_grad_() for t in (q, k, v)]
    bd = None
    if bias is not None:
        bd = bias.detach() if bias.dtype == torch.bool else bias.detach().double()
        bd.requires_grad_(bias.is_floating_point())
    T = attention_dense(*ind, scale, bd, causal, window)
    gd = [x.double() for x in g]
    gd[1] = torch.where(torch.isfinite(T[1]), gd[1], 0.0)
    wrtd = ind + ([bd] if bd is not None and bd.requires_grad else [])
    Gd = torch.autograd.grad(list(T), wrtd, gd)
    return r, G, T, Gd


def qkv(sq=3, sk=5, d=16, h=2, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, h, n, d, generator=g).to(dtype) for n in (sq, sk, sk))


# ---- the tests (collected by the two test modules, each defining the `backend` fixture) ----

import pytest  # noqa: E402

TOL = 1e-5  # fp32 inputs, well-conditioned fp64 truth


@pytest.mark.parametrize("s_mag", [1e4, 1e6])
def test_extreme_huge_logits_forward(backend, s_mag):
    """scale·q·k ~ ±1e4 / ±1e6: π is one-hot, H = 0, lse = the max score (fp32 relative)."""
    q, k, v = qkv()
    scale = s_mag / 4.0
    r = api.hj_attention(q, k, v, scale=scale)
    out, lse, ent = attention_dense(q, k, v, scale)
    assert rel(r.out, out) <= TOL and rel(r.lse, lse) <= TOL
    assert r.entropy.abs().max() <= 1e-6 and ent.abs().max() <= 1e-6


def test_extreme_fp16_scores_above_65504(backend):
    """fp16 q·k beyond fp16's range: statistics are fp32, nothing overflows to inf."""
    g = torch.Generator().manual_seed(1)
    q = (torch.randn(1, 1, 2, 16, generator=g) * 80).half()
    k = (torch.randn(1, 1, 4, 16, generator=g) * 80).half()
    v = torch.randn(1, 1, 4, 16, generator=g).half()
    q[0, 0, 0] = k[0, 0, 1]
    r = api.hj_attention(q, k, v, scale=1.0)
    out, lse, _ = attention_dense(q, k, v, 1.0)
    assert lse.abs().max() > 65504
    assert torch.isfinite(r.lse).all() and rel(r.lse, lse) <= 1e-6
    assert rel(r.out, out) <= 1e-3 and r.entropy.abs().max() <= 1e-6


def test_extreme_near_uniform_entropy(backend):
    """scale = 1e-6: π ≈ uniform, H → log Sk to fp32 precision (no cancellation)."""
    q, k, v = qkv(sk=37)
    r, G, T, Gd = attention_grads(q, k, v, 1e-6)
    assert (r.entropy.double() - math.log(37)).abs().max() <= 1e-6
    assert rel(r.entropy, T[2]) <= TOL and rel(r.out, T[0]) <= TOL
    for a, b in zip(G, Gd, strict=True):
        assert rel(a, b) <= TOL


@pytest.mark.parametrize("bv", [-math.inf, FMIN, -1e30, -1e29, -1e4])
def test_extreme_bias_one_key(backend, bv):
    """One key of every row removed / pushed far down: forward and backward vs fp64."""
    q, k, v = qkv()
    b = torch.zeros(1, 2, 3, 5)
    b[..., 1] = bv
    r, G, T, Gd = attention_grads(q, k, v, 0.25, b)
    for a, t in zip((r.out, r.lse, r.entropy), T, strict=True):
        assert rel(a, t) <= TOL
    for a, t in zip(G, Gd, strict=True):
        assert rel(a, t) <= TOL


@pytest.mark.parametrize("bv", [-math.inf, FMIN, -2e38, -1e38, -1e30])
@pytest.mark.parametrize("whole_row", [False, True])
def test_extreme_removed_bias_gives_finite_grads(backend, bv, whole_row):
    """A bias so negative that the forward removes the key (base-2 score −inf or below the
    −1e30 floor: row with no visible key) must get the −inf bias's gradients, never NaN — also
    with a large entropy gradient (−g_H·s must not overflow against π = 0)."""
    q, k, v = qkv()
    res = []
    for val in (-math.inf, bv):
        b = torch.zeros(1, 2, 3, 5)
        if whole_row:
            b[:, :, 0, :] = val
        else:
            b[..., 1] = val
        ins = [t.clone().requires_grad_() for t in (q, k, v, b)]
        r = api.hj_attention(*ins[:3], scale=0.25, bias=ins[3])
        lse = torch.where(torch.isfinite(r.lse), r.lse, 0.0)
        (r.out.sum() + lse.sum() + 4.0 * r.entropy.sum()).backward()
        res.append([r.lse] + [t.grad for t in ins])
    for a, b in zip(*res, strict=True):
        assert not torch.isnan(b).any()
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)


def test_extreme_bias_plus_inf_gives_nan_row(backend):
    """+inf bias at one key: that row is NaN (∞ − ∞), the other rows are unaffected."""
    q, k, v = qkv()
    b = torch.zeros(1, 2, 3, 5)
    b[0, 0, 1, 2] = math.inf
    r = api.hj_attention(q, k, v, scale=0.25, bias=b)
    ref = api.hj_attention(q, k, v, scale=0.25)
    bad = torch.zeros(1, 2, 3, dtype=torch.bool)
    bad[0, 0, 1] = True
    assert torch.isnan(r.out[bad]).all() and torch.isnan(r.lse[bad]).all()
    assert torch.isnan(r.entropy[bad]).all()
    torch.testing.assert_close(r.out[~bad], ref.out[~bad])
    torch.testing.assert_close(r.lse[~bad], ref.lse[~bad])


def test_extreme_nan_key_gives_nan_row(backend):
    q, k, v = qkv()
    b = torch.zeros(1, 2, 3, 5)
    b[0, 1, 2, 3] = math.nan
    r = api.hj_attention(q, k, v, scale=0.25, bias=b)
    ref = api.hj_attention(q, k, v, scale=0.25)
    bad = torch.zeros(1, 2, 3, dtype=torch.bool)
    bad[0, 1, 2] = True
    assert torch.isnan(r.out[bad]).all() and torch.isnan(r.lse[bad]).all()
    assert torch.isnan(r.entropy[bad]).all()
    torch.testing.assert_close(r.out[~bad], ref.out[~bad])
    torch.testing.assert_close(r.entropy[~bad], ref.entropy[~bad])


@pytest.mark.parametrize(("sq", "sk", "causal", "window"),
                         [(3, 1, False, None), (1, 5, False, 1), (7, 5, True, None),
                          (4, 4, True, 1)])
def test_extreme_tiny_shapes_and_empty_rows(backend, sq, sk, causal, window):
    """Sk = 1, Sq = 1 with window 1, causal with Sq > Sk (rows with no visible key: out 0,
    lse −inf, H 0, zero gradients): forward and backward vs fp64."""
    q, k, v = qkv(sq=sq, sk=sk)
    r, G, T, Gd = attention_grads(q, k, v, 0.25, None, causal, window)
    for a, t in zip((r.out, r.lse, r.entropy), T, strict=True):
        assert rel(a, t) <= TOL
    for a, t in zip(G, Gd, strict=True):
        assert rel(a, t) <= TOL
    if causal and sq > sk:
        empty = torch.arange(sq) < sq - sk
        assert (r.out[..., empty, :] == 0).all() and (r.entropy[..., empty] == 0).all()
        assert (r.lse[..., empty] == -math.inf).all() and (G[0][..., empty, :] == 0).all()


def test_extreme_all_rows_masked(backend):
    q, k, v = qkv()
    ins = [t.clone().requires_grad_() for t in (q, k, v)]
    keep = torch.zeros(1, 2, 3, 5, dtype=torch.bool)
    r = api.hj_attention(*ins, scale=0.25, bias=keep)
    assert (r.out == 0).all() and (r.lse == -math.inf).all() and (r.entropy == 0).all()
    (r.out.sum() + r.entropy.sum()).backward()
    assert all((t.grad == 0).all() for t in ins)


def _hc_check(x, W, b, eps, tol):
    ins = [t.clone().requires_grad_() for t in (x, W, b)]
    r = api.hopf_cole(*ins, eps)
    gen = torch.Generator().manual_seed(3)
    g = [torch.randn(t.shape, generator=gen) for t in (r.value, r.grad, r.entropy)]
    G = torch.autograd.grad([r.value, r.grad, r.entropy], ins, g)
    leaves = [t.detach().double().requires_grad_() for t in (x, W, b)]
    T = hopf_cole_dense(*leaves, eps)
    Gd = torch.autograd.grad(list(T), leaves, [t.double() for t in g])
    for a, t in zip((r.value, r.grad, r.entropy), T, strict=True):
        assert rel(a, t) <= tol
    for a, t in zip(G, Gd, strict=True):
        assert rel(a, t) <= tol


@pytest.mark.parametrize("case", ["N1", "b_inf", "x0", "eps_big"])
def test_extreme_hopf_cole(backend, hc_tol, case):
    g = torch.Generator().manual_seed(2)
    x, W, b = torch.randn(3, 8, generator=g), torch.randn(6, 8, generator=g), torch.randn(6,
                                                                                      generator=g)
    eps = 1.0
    if case == "N1":
        W, b = W[:1], b[:1]
    elif case == "b_inf":
        b[2] = b[4] = -math.inf
    elif case == "x0":
        x = torch.zeros_like(x)
    else:
        eps = 1e6
    _hc_check(x, W, b, eps, hc_tol)


def test_extreme_hopf_cole_removed_atoms_grads(backend):
    """b = −inf atoms: zero gradient to their W rows and b entries (not NaN)."""
    g = torch.Generator().manual_seed(2)
    x, W, b = torch.randn(3, 8, generator=g), torch.randn(6, 8, generator=g), torch.randn(6,
                                                                                      generator=g)
    b[2] = -math.inf
    ins = [t.clone().requires_grad_() for t in (x, W, b)]
    r = api.hopf_cole(*ins, 1.0)
    (r.value.sum() + r.grad.sum() + 3 * r.entropy.sum()).backward()
    assert all(torch.isfinite(t.grad).all() for t in ins)
    assert (ins[1].grad[2] == 0).all() and ins[2].grad[2] == 0


def test_extreme_sweep_eps_range_and_identical_row(backend):
    eps = [1e-6, 1e-3, 1.0, 1e3, 1e6]
    g = torch.Generator().manual_seed(4)
    z = torch.randn(4, 7, generator=g)
    z[1] = 3.25  # identical logits: H = log N at every ε
    z[2, 3] = -math.inf
    z[3] *= 1e4
    r = api.entropy_sweep(z, eps)
    assert (r[1].double() - math.log(7)).abs().max() <= 2e-7
    assert (r.double() - sweep_dense(z, eps)).abs().max() <= 1e-6
    q, k = qkv(sq=3, sk=5, h=1)[:2]
    r = api.entropy_sweep(None, eps, q=q, k=k, causal=True)
    s = (q.double() @ k.double().transpose(-1, -2)).masked_fill(
        ~_visible(3, 5, True, None), -math.inf)
    assert (r.double() - sweep_dense(s, eps)).abs().max() <= 1e-5


# ---- |lse| ≫ log Sk (huge scores / biases, Hopf–Cole at small ε): fp32 lse has rounded log l
# away (ulp(lse) ≈ |lse|·6e-8), so the backward and the top-k weights rebuild π from the
# forward's lse_parts (m, log₂ l) instead: π = 2^{(t − m) − log₂ l} with t − m exact.

FP32_U = 2.0**-24  # unit roundoff


@pytest.mark.parametrize("eps", [1e-3, 1e-6])
def test_extreme_hopf_cole_small_eps_backward(backend, hc_tol, eps):
    """ε small: π one-hot (value, grad, H exact). Gradients through value and entropy are exact
    (rebuilt from fp32 lse they were 0.3 … 1e5 relative off). With a gradient on `grad` too,
    the flash-style row term c = g_lse − dO·out adds terms of size |dO·W| ≫ g_lse = ε·g_value
    before the 1/ε scale: error ≈ u·|dO||W|/ε, fp32's own conditioning (measured 5e-4 at
    ε = 1e-3, 0.25 at ε = 1e-6)."""
    g = torch.Generator().manual_seed(2)
    x, W, b = torch.randn(3, 8, generator=g), torch.randn(6, 8, generator=g), torch.randn(6,
                                                                                      generator=g)
    ins = [t.clone().requires_grad_() for t in (x, W, b)]
    r = api.hopf_cole(*ins, eps)
    gen = torch.Generator().manual_seed(3)
    g_val, g_grad, g_ent = (torch.randn(t.shape, generator=gen)
                            for t in (r.value, r.grad, r.entropy))
    leaves = [t.detach().double().requires_grad_() for t in (x, W, b)]
    T = hopf_cole_dense(*leaves, eps)
    for a, t in zip((r.value, r.grad, r.entropy), T, strict=True):
        assert rel(a, t) <= max(hc_tol, 1e-6)
    G = torch.autograd.grad([r.value, r.entropy], ins, [g_val, g_ent], retain_graph=True)
    Gd = torch.autograd.grad([T[0], T[2]], leaves, [g_val.double(), g_ent.double()],
                             retain_graph=True)
    for a, t in zip(G, Gd, strict=True):
        assert rel(a, t) <= max(hc_tol, 1e-5)
    G = torch.autograd.grad([r.value, r.grad, r.entropy], ins, [g_val, g_grad, g_ent])
    Gd = torch.autograd.grad(list(T), leaves, [g_val.double(), g_grad.double(),
                                               g_ent.double()])
    for a, t in zip(G, Gd, strict=True):
        assert rel(a, t) <= max(hc_tol, 16 * FP32_U / eps)


def test_extreme_far_bias_row_backward(backend):
    """Every key of row 0 at bias −1e29 (fp32 and fp64 both absorb q·k: π uniform, forward
    exact): the backward keeps Σ_j π_j = 1 (from fp32 lse it was 1 per key) and the entropy
    term does not cancel (it reached ~1e21)."""
    q, k, v = qkv()
    b = torch.zeros(1, 2, 3, 5)
    b[:, :, 0, :] = -1e29
    r, G, T, Gd = attention_grads(q, k, v, 0.25, b)
    for a, t in zip((r.out, r.lse, r.entropy), T, strict=True):
        assert rel(a, t) <= TOL
    for a, t in zip(G, Gd, strict=True):
        assert rel(a, t) <= TOL


def test_extreme_mask_1e9_row_dv_sums_to_dout(backend):
    """A row masked by a −1e9 bias (a common mask value): the forward averages v uniformly
    (fp32 absorbs q·k), so Σ_j dv_j from that row must equal dO (from fp32 lse: Sk·dO)."""
    q, k, v = qkv(h=1)
    b = torch.zeros(1, 1, 3, 5)
    b[:, :, 0, :] = -1e9
    vv = v.clone().requires_grad_()
    r = api.hj_attention(q, k, vv, scale=0.25, bias=b)
    assert (r.entropy[0, 0, 0] - math.log(5)).abs() <= 1e-6  # uniform π in the forward
    go = torch.zeros_like(r.out)
    go[0, 0, 0] = 1.0
    r.out.backward(go)
    torch.testing.assert_close(vv.grad.sum(2)[0, 0], go[0, 0, 0], rtol=1e-5, atol=1e-5)


def test_extreme_huge_logits_backward(backend):
    """scale·q·k ~ ±1e4: forward exact (one-hot π) and backward too (from fp32 lse: 2e-4)."""
    q, k, v = qkv()
    _, G, _, Gd = attention_grads(q, k, v, 2.5e3)
    for a, t in zip(G, Gd, strict=True):
        assert rel(a, t) <= TOL


# ---- split-K merge (decode path): partial lse values far from 0 ----


def merge_far_lse_partials():
    """Two splits of 32 equal scores each at −1e29 (or −1e9), given as lse_parts (m_s, log₂ 32):
    the merged weights must be 1/2 each (Σ w = 1), out = the mean of the partial outputs,
    H = log 32 + log 2 and the merged parts (m, log₂ 64) — where fp32 lse_s = fp32(−1e29 + log
    32) = −1e29 would give w = e^{lse_s − lse} = 1 each (out = their sum, H = 2·log 32). A third
    case gives the second split half the mass (log₂ l = 4): weights 2/3, 1/3."""
    out = torch.stack([torch.full((1, 4), 1.0), torch.full((1, 4), 3.0)])  # [S=2, R=1, D=4]
    res = []
    for big, drop in ((-1e29, 0.0), (-1e9, 0.0), (-1e9, 1.0)):
        m = torch.full((2, 1), big * LOG2E)  # [S, R]
        r = torch.tensor([[5.0], [5.0 - drop]])  # log₂ 32, log₂ 16 when drop = 1
        parts = torch.stack([m, r], dim=-1)  # [S, R, 2]
        ent = torch.full((2, 1), math.log(32.0))
        res.append((out, parts, ent, drop))
    return res


def check_merge(merge) -> list[Tensor]:
    """Merge each far-lse case; returns the merged entropies (log 64 when the splits weigh the
    same)."""
    ents = []
    for out, parts, ent, drop in merge_far_lse_partials():
        o, lse, h, pm = merge(out, parts, ent, torch.float32)
        w0 = 1.0 / (1.0 + 2.0**-drop)
        mean = w0 * 1.0 + (1.0 - w0) * 3.0
        torch.testing.assert_close(o, torch.full((1, 4), mean), rtol=1e-6, atol=1e-6)
        assert pm[0, 0].item() == parts[0, 0, 0].item()  # the max m, exactly
        want_r = 5.0 + math.log2(1.0 + 2.0**-drop)
        assert abs(pm[0, 1].item() - want_r) <= 1e-6
        assert lse.item() == torch.tensor((pm[0, 0].item() + pm[0, 1].item()) * LN2).item()
        ents.append(h)
    return ents


def test_extreme_topk_weights_far_bias_row(backend):
    """A row at bias −1e9 (π uniform over 8 keys in the forward, H = log 8): top-k weights 1/8
    (as e^{score − lse} from the rounded fp32 lse they were 1, 1, 1)."""
    q, k, v = qkv(sk=8, h=1)
    b = torch.zeros(1, 1, 3, 8)
    b[:, :, 0, :] = -1e9
    r = api.hj_attention(q, k, v, scale=0.25, bias=b, topk=3)
    assert (r.entropy[0, 0, 0] - math.log(8)).abs() <= 1e-6
    torch.testing.assert_close(r.topk_weights[0, 0, 0], torch.full((3,), 1 / 8))
