"""The closed-form backward of the public ops (hj_attention, hopf_cole; reference backend on CPU)
against torch autograd through an independent dense fp64 evaluation (materialised softmax).

Every output (out / value, lse, entropy, grad, top-k weights) is pulled back with its own random
upstream gradient, together and one at a time, so each term of the closed form is checked on its
own: the entropy's −g_H·s, the lse's g_lse, the output's dO·v, the top-k's dense and sparse parts.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from hjplug.kernels.api import hj_attention, hopf_cole

F64 = torch.float64
NEG = -math.inf
REL = 1e-10  # relative to the largest |gradient| of the dense truth
ATT_OUTS = ("out", "lse", "entropy", "topk_weights")
HC_OUTS = ("value", "grad", "entropy", "topk_weights")


# ------------------------------------------------------------------------- dense fp64 truths
def band(sq: int, sk: int, causal: bool, window: int | None) -> Tensor:
    """[sq, sk] bool: query i (absolute position i + sk − sq) sees key j."""
    i = torch.arange(sq)[:, None] + (sk - sq)
    j = torch.arange(sk)[None, :]
    ok = torch.ones(sq, sk, dtype=torch.bool)
    if causal:
        ok = ok & (j <= i)
    if window is not None:
        ok = ok & (j > i - window)
        if not causal:
            ok = ok & (j < i + window)
    return ok


def _pad_topk(p: Tensor, topk: int) -> Tensor:
    """The topk largest entries of p along the last dim, descending, zero-padded to topk."""
    w = p.topk(min(topk, p.shape[-1]), dim=-1).values
    if w.shape[-1] < topk:
        w = torch.cat([w, w.new_zeros((*w.shape[:-1], topk - w.shape[-1]))], -1)
    return w


def _softmax_stats(s: Tensor, vis: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(π, lse, entropy) of scores s over the visible entries, differentiable everywhere:
    rows with no visible entry get π = 0, lse = −inf, entropy = 0 and pass no gradient."""
    dead = ~vis.any(-1, keepdim=True)
    sm = torch.where(vis, s, NEG)
    sm = torch.where(dead, 0.0, sm)  # finite dummy row; zeroed below (no 0·∞ in the backward)
    lse = torch.logsumexp(sm, -1, keepdim=True)
    logp = torch.where(vis, sm - lse, 0.0)
    p = torch.where(vis, torch.exp(logp), 0.0)
    ent = -(p * logp).sum(-1)  # 0·log 0 = 0: logp is 0 off the visible set
    return p, torch.where(dead[..., 0], NEG, lse[..., 0]), ent


def dense_attention(q, k, v, *, scale=None, causal=False, bias=None, window=None, topk=0):
    """(out, lse, entropy, topk_weights or None), naive fp64 with materialised scores."""
    _, H, Sq, D = q.shape
    Sk = k.shape[2]
    g = H // k.shape[1]
    kf, vf = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    sc = D ** -0.5 if scale is None else scale
    s = sc * (q @ kf.transpose(-1, -2))  # [B, H, Sq, Sk]
    vis = band(Sq, Sk, causal, window).expand(s.shape)
    if bias is not None:
        if bias.dtype == torch.bool:
            vis = vis & bias
        else:
            s = s + bias
            vis = vis & (bias != NEG)
    p, lse, ent = _softmax_stats(s, vis)
    return p @ vf, lse, ent, _pad_topk(p, topk) if topk else None


def dense_hopf_cole(x, W, b, eps, topk=0):
    """(value, grad, entropy, topk_weights or None), naive fp64."""
    z = (x @ W.T + b) / eps  # [M, N]
    p, lse, ent = _softmax_stats(z, torch.ones_like(z, dtype=torch.bool))
    return eps * lse, p @ W, ent, _pad_topk(p, topk) if topk else None


# ------------------------------------------------------------------------------------ helpers
def _loss(outs, ups) -> Tensor:
    """Σ over outputs of ⟨output, upstream⟩, non-finite outputs (lse = −inf rows) left out."""
    tot = torch.zeros((), dtype=F64)
    for o, u in zip(outs, ups, strict=True):
        if o is not None and u is not None:
            tot = tot + torch.where(torch.isfinite(o), o * u, 0.0).sum()
    return tot


def _grads(loss: Tensor, leaves: list[Tensor]) -> tuple[Tensor, ...]:
    return torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)


def _assert_close(got: Tensor, want: Tensor, name: str, rel: float = REL) -> None:
    assert got.shape == want.shape, (name, got.shape, want.shape)
    assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
    assert torch.isfinite(got).all(), f"{name}: non-finite gradient"
    err = float((got - want).abs().max()) if got.numel() else 0.0
    tol = max(rel * float(want.abs().max()) if want.numel() else 0.0, 1e-14)
    assert err <= tol, f"{name}: max |error| {err:.3e} > {tol:.3e}"


def _rand(gen, *shape, grad=True) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=F64).requires_grad_(grad)


def check_attention(q, k, v, bias=None, *, use=ATT_OUTS, seed=0, **kw):
    """API grads == dense autograd grads for every leaf that requires grad; returns the API
    grads by leaf name."""
    gen = torch.Generator().manual_seed(1000 + seed)
    named = [("q", q), ("k", k), ("v", v), ("bias", bias)]
    leaves = [(n, t) for n, t in named if t is not None and t.requires_grad]
    r = hj_attention(q, k, v, bias=bias, **kw)
    e = dense_attention(q, k, v, bias=bias, **kw)
    return _compare(tuple(r[:4]), e, ATT_OUTS, leaves, use, gen)


def _compare(got_outs, e, names, leaves, use, gen) -> dict:
    """Forward outputs equal (the truth is the same function), then the gradients of a random
    combination of the outputs in `use` for every leaf; returns the API grads by leaf name."""
    for name, a, b in zip(names, got_outs, e, strict=True):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"forward {name}")
    ups = [None if (o is None or n not in use) else
           torch.randn(o.shape, generator=gen, dtype=F64)
           for n, o in zip(names, e, strict=True)]
    got = _grads(_loss(got_outs, ups), [t for _, t in leaves])
    want = _grads(_loss(e, ups), [t for _, t in leaves])
    for (n, _), a, b in zip(leaves, got, want, strict=True):
        _assert_close(a, b, f"d{n} (outputs {use})")
    return {n: a for (n, _), a in zip(leaves, got, strict=True)}


def _qkv(gen, B=1, H=2, Hk=1, Sq=5, Sk=7, D=8, Dv=None, grad=True):
    return (_rand(gen, B, H, Sq, D, grad=grad), _rand(gen, B, Hk, Sk, D, grad=grad),
            _rand(gen, B, Hk, Sk, D if Dv is None else Dv, grad=grad))


# --------------------------------------------------------------------------------- attention
@pytest.mark.parametrize("use", [ATT_OUTS[:3], ("out",), ("lse",), ("entropy",)])
@pytest.mark.parametrize(("B", "H", "Hk", "Sq", "Sk", "causal"), [
    (2, 2, 2, 6, 6, False),   # plain
    (2, 4, 2, 5, 9, False),   # grouped-query, Sq < Sk
    (1, 4, 2, 5, 9, True),    # causal aligned bottom-right with Sq < Sk
    (1, 1, 1, 1, 7, False),   # one query (decode)
    (1, 2, 1, 1, 7, True),
])
def test_attention_grads_match_dense(B, H, Hk, Sq, Sk, causal, use):
    gen = torch.Generator().manual_seed(B + 10 * H + 100 * Sq + Sk)
    q, k, v = _qkv(gen, B, H, Hk, Sq, Sk, D=8)
    check_attention(q, k, v, causal=causal, use=use, seed=Sq)


@pytest.mark.parametrize("use", [ATT_OUTS[:3], ("entropy",)])
@pytest.mark.parametrize(("Sq", "Sk", "causal", "window"), [
    (7, 11, True, 3), (7, 11, False, 3), (9, 9, False, 1), (4, 12, True, 5),
])
def test_attention_grads_window(Sq, Sk, causal, window, use):
    gen = torch.Generator().manual_seed(Sq * Sk + window)
    q, k, v = _qkv(gen, 2, 4, 2, Sq, Sk, D=8)
    check_attention(q, k, v, causal=causal, window=window, use=use, scale=0.7)


@pytest.mark.parametrize("use", [ATT_OUTS[:3], ("out",), ("lse",), ("entropy",)])
@pytest.mark.parametrize("shape", [(2, 4, 5, 9), (2, 1, 1, 9), (5, 9), (1, 4, 1, 9), (9,)])
def test_attention_grads_float_bias(shape, use):
    """Bias of full, per-key row, [Sq, Sk], per-head row and key-only shape: its gradient
    summed over the broadcast dims."""
    gen = torch.Generator().manual_seed(len(shape) * 7 + shape[-2 if len(shape) > 1 else 0])
    q, k, v = _qkv(gen, 2, 4, 2, 5, 9, D=8)
    bias = _rand(gen, *shape)
    g = check_attention(q, k, v, bias, causal=True, use=use)
    assert g["bias"].shape == bias.shape


def test_attention_grads_minus_inf_bias_and_dead_rows():
    """−inf entries remove keys (their bias gradient is 0); an all −inf row sees nothing: its
    outputs pass no gradient, dq of that row is exactly 0 and every gradient is finite."""
    gen = torch.Generator().manual_seed(3)
    q, k, v = _qkv(gen, 2, 4, 2, 6, 8, D=8)
    b = torch.randn(2, 4, 6, 8, generator=gen, dtype=F64)
    b = b.masked_fill(torch.rand(2, 4, 6, 8, generator=gen) < 0.4, NEG)
    b[0, 1, 2] = NEG  # a dead row
    b[1, :, 4] = NEG  # dead in every head
    b.requires_grad_(True)
    for use in (ATT_OUTS[:3], ("entropy",), ("lse",)):
        g = check_attention(q, k, v, b, use=use)
        assert torch.equal(g["q"][0, 1, 2], torch.zeros(8, dtype=F64))
        assert torch.equal(g["q"][1, :, 4], torch.zeros(4, 8, dtype=F64))
        assert torch.equal(g["bias"][torch.isneginf(b)], torch.zeros_like(b[torch.isneginf(b)]))


def test_attention_grads_bool_mask_with_dead_row():
    gen = torch.Generator().manual_seed(4)
    q, k, v = _qkv(gen, 1, 4, 2, 6, 9, D=8)
    keep = torch.rand(1, 1, 6, 9, generator=gen) > 0.5
    keep[..., 3, :] = False  # row 3 sees no key in every head
    keep[..., 0, 0] = True
    for use in (ATT_OUTS[:3], ("out",), ("entropy",)):
        g = check_attention(q, k, v, keep, window=4, use=use)
        assert torch.equal(g["q"][:, :, 3], torch.zeros(1, 4, 8, dtype=F64))


def test_attention_grads_causal_rows_without_keys():
    """Sq > Sk, causal bottom-right: the top Sq − Sk rows see no key (lse = −inf)."""
    gen = torch.Generator().manual_seed(5)
    q, k, v = _qkv(gen, 1, 2, 1, 7, 4, D=8)
    g = check_attention(q, k, v, causal=True, topk=3)
    assert torch.equal(g["q"][:, :, :3], torch.zeros(1, 2, 3, 8, dtype=F64))


@pytest.mark.parametrize("use", [ATT_OUTS[:3], ("lse",), ("entropy",)])
def test_attention_grads_value_dim_differs(use):
    gen = torch.Generator().manual_seed(6)
    q, k, v = _qkv(gen, 2, 4, 2, 5, 7, D=8, Dv=5)
    bias = _rand(gen, 2, 4, 5, 7)
    g = check_attention(q, k, v, bias, causal=True, window=4, use=use)
    assert g["v"].shape == v.shape


@pytest.mark.parametrize("use", [ATT_OUTS, ("topk_weights",)])
@pytest.mark.parametrize(("Sq", "Sk", "causal", "window", "topk", "bias"), [
    (5, 9, False, None, 3, None),
    (6, 6, True, None, 3, "full"),   # the first rows see 1, 2 keys < k
    (5, 9, True, 2, 3, "row"),       # window 2: at most 2 visible keys < k
    (4, 6, False, None, 8, "sqsk"),  # k > Sk: padding
    (7, 4, True, None, 3, "mask"),   # dead rows and −inf keys
])
def test_attention_grads_topk(Sq, Sk, causal, window, topk, bias, use):
    gen = torch.Generator().manual_seed(Sq * 31 + Sk * 7 + topk)
    q, k, v = _qkv(gen, 2, 4, 2, Sq, Sk, D=8)
    b = {None: None, "full": (2, 4, Sq, Sk), "row": (2, 1, 1, Sk), "sqsk": (Sq, Sk),
         "mask": (1, 4, Sq, Sk)}[bias]
    if b is not None:
        b = torch.randn(*b, generator=gen, dtype=F64)
        if bias == "mask":
            b = b.masked_fill(torch.rand(b.shape, generator=gen) < 0.3, NEG)
        b.requires_grad_(True)
    check_attention(q, k, v, b, causal=causal, window=window, topk=topk, use=use)


def test_attention_grads_only_some_inputs_require_grad():
    gen = torch.Generator().manual_seed(8)
    q, k, v = _qkv(gen, 1, 4, 2, 5, 7, D=8, grad=False)
    for leaf in (q, k, v):
        leaf.requires_grad_(True)
        check_attention(q, k, v, causal=True, topk=2)
        leaf.requires_grad_(False)
    b = _rand(gen, 1, 4, 5, 7)
    check_attention(q, k, v, b, causal=True)  # bias alone


def test_attention_gradcheck():
    gen = torch.Generator().manual_seed(9)
    q, k, v = _qkv(gen, 1, 2, 1, 3, 5, D=4)
    bias = _rand(gen, 1, 2, 3, 5)

    def f(q, k, v, bias):
        r = hj_attention(q, k, v, bias=bias, causal=True, window=4, topk=2, scale=0.8)
        return r.out, r.lse, r.entropy, r.topk_weights

    assert torch.autograd.gradcheck(f, (q, k, v, bias), eps=1e-6, atol=1e-7, rtol=1e-6)


# --------------------------------------------------------------------------------- hopf_cole
def check_hopf_cole(x, W, b, eps, topk=0, use=HC_OUTS, seed=0):
    gen = torch.Generator().manual_seed(2000 + seed)
    leaves = [(n, t) for n, t in (("x", x), ("W", W), ("b", b)) if t.requires_grad]
    r = hopf_cole(x, W, b, eps, topk=topk)
    e = dense_hopf_cole(x, W, b, eps, topk)
    _compare(tuple(r[:4]), e, HC_OUTS, leaves, use, gen)


@pytest.mark.parametrize("use", [HC_OUTS[:3], ("value",), ("grad",), ("entropy",)])
@pytest.mark.parametrize(("M", "N", "d", "eps"), [(5, 9, 4, 0.5), (1, 7, 3, 2.0),
                                                  (6, 1, 3, 1.0), (4, 13, 6, 0.1)])
def test_hopf_cole_grads_match_dense(M, N, d, eps, use):
    gen = torch.Generator().manual_seed(M * N * d)
    x, W, b = _rand(gen, M, d), _rand(gen, N, d), _rand(gen, N)
    check_hopf_cole(x, W, b, eps, use=use, seed=N)


@pytest.mark.parametrize("use", [HC_OUTS, ("topk_weights",)])
@pytest.mark.parametrize(("N", "topk"), [(9, 3), (4, 6)])
def test_hopf_cole_grads_topk(N, topk, use):
    gen = torch.Generator().manual_seed(N + topk)
    x, W, b = _rand(gen, 5, 4), _rand(gen, N, 4), _rand(gen, N)
    check_hopf_cole(x, W, b, 0.6, topk=topk, use=use)


def test_hopf_cole_grads_partial_leaves():
    gen = torch.Generator().manual_seed(11)
    x, W, b = _rand(gen, 5, 4, grad=False), _rand(gen, 9, 4, grad=False), _rand(gen, 9, grad=False)
    for leaf in (x, W, b):
        leaf.requires_grad_(True)
        check_hopf_cole(x, W, b, 0.8, topk=2)
        leaf.requires_grad_(False)


def test_hopf_cole_gradcheck():
    gen = torch.Generator().manual_seed(12)
    x, W, b = _rand(gen, 3, 4), _rand(gen, 5, 4), _rand(gen, 5)

    def f(x, W, b):
        r = hopf_cole(x, W, b, 0.7, topk=2)
        return r.value, r.grad, r.entropy, r.topk_weights

    assert torch.autograd.gradcheck(f, (x, W, b), eps=1e-6, atol=1e-7, rtol=1e-6)


# ----------------------------------------------------------------------- no forward recompute
def test_backward_does_not_rerun_the_forward(monkeypatch):
    """The closed form rebuilds π from the saved lse_parts: the forward twins (and their online
    chunk merge) are not called during the backward."""
    import hjplug.kernels.reference.hj_attention as ref_attn
    import hjplug.kernels.reference.hopf_cole as ref_hc
    from hjplug.kernels.reference import _online

    gen = torch.Generator().manual_seed(13)
    q, k, v = _qkv(gen, 1, 4, 2, 5, 7, D=8)
    b = _rand(gen, 1, 4, 5, 7)
    r = hj_attention(q, k, v, bias=b, causal=True, topk=2)
    x, W, c = _rand(gen, 4, 3), _rand(gen, 6, 3), _rand(gen, 6)
    h = hopf_cole(x, W, c, 0.5, topk=2)

    def boom(*a, **kw):
        raise AssertionError("the backward called a forward")

    for mod, name in ((ref_attn, "hj_attention"), (ref_hc, "hopf_cole"), (_online, "merge_chunk"),
                      (_online, "finish")):
        monkeypatch.setattr(mod, name, boom)
    (r.out.sum() + r.lse.sum() + r.entropy.sum() + r.topk_weights.sum()).backward()
    (h.value.sum() + h.grad.sum() + h.entropy.sum() + h.topk_weights.sum()).backward()
    assert all(t.grad is not None for t in (q, k, v, b, x, W, c))
