"""The fused HJ attention backward kernels (kernels/triton/hj_attention_bwd.py) under
TRITON_INTERPRET=1 against the closed-form reference twin, fp32, awkward shapes; and the public
ops' gradients with HJPLUG_KERNEL=triton against HJPLUG_KERNEL=reference.

Run by tests/kernels/test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start).
"""

from __future__ import annotations

import math
import os

import pytest
import torch

pytestmark = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1",
    reason="run by test_interpreter_subprocess.py (needs TRITON_INTERPRET=1 at process start)",
)

pytest.importorskip("triton")

from hjplug.kernels.api import hj_attention, hopf_cole  # noqa: E402
from hjplug.kernels.reference.hj_attention import hj_attention_parts as attn_fwd  # noqa: E402
from hjplug.kernels.reference.hj_attention_bwd import hj_attention_bwd as bwd_ref  # noqa: E402
from hjplug.kernels.reference.hj_attention_bwd import row_terms  # noqa: E402

REL = 2e-5  # relative to the largest |gradient| of the twin
NAMES = ("dq", "dk", "dv", "dbias")


def _bias(kind, B, H, Sq, Sk, gen):
    """None | full [B,H,Sq,Sk] | row [B,1,1,Sk] | sqsk [Sq,Sk] with −inf | bool [B,1,Sq,Sk] |
    query [Sq,1] | head [1,H,1,1] | heads [1,H,Sq,Sk] | batch [B,1,Sq,Sk]."""
    if kind is None:
        return None
    if kind == "bool":
        keep = torch.rand(B, 1, Sq, Sk, generator=gen) > 0.4
        keep[..., -1] = True
        return keep
    shape = {"full": (B, H, Sq, Sk), "row": (B, 1, 1, Sk), "sqsk": (Sq, Sk), "query": (Sq, 1),
             "head": (1, H, 1, 1), "heads": (1, H, Sq, Sk), "batch": (B, 1, Sq, Sk)}[kind]
    b = torch.randn(*shape, generator=gen)
    if kind == "sqsk":
        b = b.masked_fill(torch.rand(*shape, generator=gen) < 0.3, -math.inf)
        b[..., -1] = 0.0  # a visible key in every row (non-causal)
    return b


def _inputs(B, H, Hk, Sq, Sk, D, *, causal=False, window=-1, bias=None, terms="ole", seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Sq, D, generator=gen)
    k = torch.randn(B, Hk, Sk, D, generator=gen)
    v = torch.randn(B, Hk, Sk, D, generator=gen)
    b = _bias(bias, B, H, Sq, Sk, gen)
    return q, k, v, b, dict(causal=causal, window=window, terms=terms, seed=seed)


def _grads(q, k, v, b, *, causal, window, terms, seed, needs_bias, scale=None, kv_same=False):
    """(Triton, twin) backward from the twin's forward statistics and random upstreams for the
    outputs named in terms (o = out, l = lse, e = entropy)."""
    from hjplug.kernels.triton.hj_attention_bwd import hj_attention_bwd as bwd_tri

    gen = torch.Generator().manual_seed(seed + 1)
    sc = q.shape[-1] ** -0.5 if scale is None else scale
    r, pa = attn_fwd(q, k, v, scale=sc, causal=causal, bias=b,
                     window=None if window < 0 else window,
                 chunk=16)
    g_out = torch.randn(r.out.shape, generator=gen) if "o" in terms else None
    g_lse = torch.randn(r.lse.shape, generator=gen) if "l" in terms else None
    g_ent = torch.randn(r.lse.shape, generator=gen) if "e" in terms else None
    c, gh = row_terms(r.out, pa, r.entropy, g_out, g_lse, g_ent)
    args = (q, k, v, b, sc, causal, window, pa, g_out, c, gh, needs_bias)
    return bwd_tri(*args, kv_same=kv_same), bwd_ref(*args, kv_same=kv_same, chunk=16)


def _close(got, want, rel=REL, names=NAMES):
    for n, a, w in zip(names, got, want, strict=True):
        if w is None:
            assert a is None, n
            continue
        assert a.shape == w.shape and a.dtype == w.dtype, (n, a.shape, w.shape, a.dtype, w.dtype)
        assert torch.isfinite(a).all(), f"{n}: non-finite"
        err = float((a - w).abs().max()) if w.numel() else 0.0
        tol = max(rel * float(w.abs().max()) if w.numel() else 0.0, 1e-12)
        assert err <= tol, f"{n}: max |error| {err:.3e} > {tol:.3e}"


# ------------------------------------------------------------------------------ kernel vs twin
@pytest.mark.parametrize(("B", "H", "Hk", "Sq", "Sk", "D", "causal", "window", "bias", "nb"), [
    (1, 2, 1, 1, 1, 32, False, -1, None, False),
    (1, 2, 1, 1, 37, 96, True, -1, "full", True),       # one query, KV cache
    (2, 2, 1, 37, 37, 32, False, -1, None, False),
    (1, 4, 2, 37, 37, 96, True, -1, "full", True),
    (1, 4, 1, 37, 37, 64, False, -1, "row", True),      # GQA H=4, Hk=1
    (1, 2, 2, 37, 37, 32, True, -1, "sqsk", True),      # [Sq, Sk] with −inf
    (1, 4, 2, 37, 50, 32, False, 7, "bool", False),     # two-sided window, bool mask
    (1, 2, 1, 37, 37, 32, False, 5, "row", False),      # bias without its gradient
    (1, 2, 1, 37, 129, 32, True, -1, "full", False),
    (1, 2, 1, 50, 37, 32, True, -1, None, False),       # Sq > Sk: rows with no key
    (1, 2, 1, 37, 37, 32, False, -1, "query", True),    # [Sq, 1]: stride 0 over keys
    (1, 4, 2, 37, 37, 32, True, 9, "head", True),       # [1, H, 1, 1]
    (1, 2, 1, 32, 48, 32, False, -1, "row", True),      # multiples of 16: no masking
    (1, 2, 1, 100, 100, 32, False, 35, "full", True),   # wide two-sided window: inner tiles
    (1, 2, 1, 129, 129, 32, True, -1, None, False),
    (1, 2, 1, 129, 129, 96, False, -1, "row", True),
    (1, 4, 2, 129, 129, 64, True, 40, "full", True),
])
def test_bwd_kernel_matches_twin(B, H, Hk, Sq, Sk, D, causal, window, bias, nb):
    q, k, v, b, kw = _inputs(B, H, Hk, Sq, Sk, D, causal=causal, window=window, bias=bias,
                             seed=Sq * 7 + Sk + D)
    got, want = _grads(q, k, v, b, needs_bias=nb, **kw)
    _close(got, want)
    if nb and b is not None and b.is_floating_point():
        assert got[3].shape == b.shape


@pytest.mark.parametrize(("B", "causal", "bias"), [(2, True, "heads"), (3, False, "batch"),
                                                   (2, False, "sqsk")])
def test_bwd_broadcast_bias_grad_in_its_own_shape(monkeypatch, B, causal, bias):
    """A float bias broadcast over batch and/or heads: dbias equals the twin's, and the dq
    kernel adds into a buffer of the bias's own batch / head extent (atomically), never a
    [B, H, Sq, Sk] one."""
    import hjplug.kernels.triton.hj_attention_bwd as tri

    seen = []
    real = tri._bwd_dq

    class Spy:
        def __getitem__(self, grid):
            def launch(*a, **kw):
                seen.append((tuple(a[9].shape), kw["DB_ATOMIC"]))  # DB
                return real[grid](*a, **kw)
            return launch

    monkeypatch.setattr(tri, "_bwd_dq", Spy())
    H, Hk, Sq, Sk = 4, 2, 29, 37
    q, k, v, b, kw = _inputs(B, H, Hk, Sq, Sk, 32, causal=causal, bias=bias, seed=B + Sq)
    got, want = _grads(q, k, v, b, needs_bias=True, **kw)
    _close(got, want)
    assert got[3].shape == b.shape
    b4 = b.reshape((1,) * (4 - b.dim()) + tuple(b.shape))
    assert seen == [((b4.shape[0], b4.shape[1], Sq, Sk), True)]


@pytest.mark.parametrize("terms", ["o", "l", "e"])
@pytest.mark.parametrize(("causal", "window", "bias"), [(True, -1, "full"), (False, 6, "row")])
def test_bwd_kernel_each_row_term_alone(terms, causal, window, bias):
    """Only one upstream at a time (g_out None when the output's gradient is missing)."""
    q, k, v, b, kw = _inputs(1, 4, 2, 21, 37, 32, causal=causal, window=window, bias=bias,
                             terms=terms, seed=len(terms) + window)
    got, want = _grads(q, k, v, b, needs_bias=True, **kw)
    _close(got, want)


@pytest.mark.parametrize(("Sq", "causal", "window", "bias"), [
    (16, False, -1, None), (16, True, -1, "row"), (3, False, 300, "full"), (1, True, 100, None),
])
def test_bwd_kernel_split_dq(monkeypatch, Sq, causal, window, bias):
    """One query block (B = H = 1, Sq ≤ 16) and 600 keys: dq is split over the keys."""
    import hjplug.kernels.triton.hj_attention_bwd as tri

    seen = []
    real = tri.n_splits

    def spy(*a, **kw):
        seen.append(real(*a, **kw))
        return seen[-1]

    monkeypatch.setattr(tri, "n_splits", spy)
    q, k, v, b, kw = _inputs(1, 1, 1, Sq, 600, 32, causal=causal, window=window, bias=bias,
                             seed=Sq + window)
    got, want = _grads(q, k, v, b, needs_bias=True, **kw)
    assert seen and seen[0] > 1, seen
    _close(got, want)


@pytest.mark.parametrize(("H", "Hk", "Sq", "Sk", "causal", "window", "bias"), [
    (1, 1, 37, 129, False, -1, "row"),  # Hopf–Cole's shape
    (4, 2, 37, 37, True, -1, "full"),
    (2, 1, 20, 45, False, 9, None),
    (1, 1, 16, 600, False, -1, "row"),  # split dq
])
def test_bwd_kernel_keys_are_values(H, Hk, Sq, Sk, causal, window, bias):
    """kv_same (v is k, one tensor): dk is its whole gradient dk + dv, dv is None, in both."""
    q, k, _, b, kw = _inputs(1, H, Hk, Sq, Sk, 32, causal=causal, window=window, bias=bias,
                             seed=Sq + Sk)
    got, want = _grads(q, k, k, b, needs_bias=True, kv_same=True, **kw)
    assert got[2] is None and want[2] is None
    _close(got, want)


def test_bwd_kernel_large_row_bias_and_query_tail():
    """Row bias ≈ +100 (π unchanged, e^s overflows fp32) with Sq = 37: the padding rows of the
    last query block must contribute exactly nothing."""
    q, k, v, _, kw = _inputs(1, 2, 1, 37, 48, 32, seed=8)
    b = torch.randn(1, 1, 1, 48, generator=torch.Generator().manual_seed(9)) * 2 + 100.0
    got, want = _grads(q, k, v, b, needs_bias=True, **kw)
    _close(got, want)


def test_bwd_kernel_fp16_inputs():
    q, k, v, b, kw = _inputs(1, 4, 2, 37, 40, 64, causal=True, bias="row", seed=5)
    q, k, v = (t.half() for t in (q, k, v))
    got, want = _grads(q, k, v, b, needs_bias=True, **kw)
    _close(got, want, rel=2e-2)


def _nan_row_case():
    """Causal, row bias: query 20 of head 1 has a NaN (it sees keys 0…20 of 37)."""
    q, k, v, b, kw = _inputs(1, 2, 1, 37, 37, 32, causal=True, bias="row", seed=6)
    q[0, 1, 20, 3] = math.nan
    return _grads(q, k, v, b, needs_bias=True, **kw)


def test_bwd_kernel_nan_query_row():
    """A NaN in one query: that row's dq is NaN in both (only it), the other rows agree; dk, dv
    and dbias are NaN at least at the keys that row sees."""
    got, want = _nan_row_case()
    assert torch.equal(torch.isnan(got[0]), torch.isnan(want[0])), "dq: NaN patterns differ"
    nan_dq = torch.isnan(got[0])
    assert nan_dq[0, 1, 20].all() and nan_dq.sum() == nan_dq[0, 1, 20].numel()
    ok = ~nan_dq
    torch.testing.assert_close(got[0][ok], want[0][ok], rtol=REL, atol=REL * 10)
    for n, a, w in zip(NAMES[1:], got[1:], want[1:], strict=True):
        for t in (a, w):
            assert torch.isnan(t[..., :21, :] if n != "dbias" else t[..., :21]).all(), n


def test_bwd_kernel_nan_query_row_same_dv_dbias_pattern():
    """dv and dbias are NaN exactly at the keys the NaN row sees (π = 0 for removed keys even
    when lse is NaN), in both. dk is not compared: dk = Σ_i ds_ij q_i multiplies the row's NaN q
    by ds = 0 for every key its tile covers, so its NaN keys depend on the tiling."""
    got, want = _nan_row_case()
    for n, a, w in zip(NAMES[2:], got[2:], want[2:], strict=True):
        assert torch.equal(torch.isnan(a), torch.isnan(w)), f"{n}: NaN patterns differ"
        keys = torch.isnan(a).any(-1)[0, 0] if n == "dv" else torch.isnan(a)[0, 0, 0]
        assert torch.equal(keys, torch.arange(37) < 21), f"{n}: NaN outside the row's keys"


@pytest.mark.parametrize("how", ["causal", "bool", "inf"])
def test_bwd_kernel_rows_without_keys_get_zero_dq(how):
    Sq, Sk = (20, 17) if how == "causal" else (20, 37)
    q, k, v, b, kw = _inputs(1, 2, 1, Sq, Sk, 32, causal=how == "causal",
                             bias={"causal": None, "bool": "bool", "inf": "full"}[how], seed=7)
    dead = [0, 1, 2] if how == "causal" else [4, 19]
    if how == "bool":
        b[..., dead, :] = False
    elif how == "inf":
        b[..., dead, :] = -math.inf
    got, want = _grads(q, k, v, b, needs_bias=how == "inf", **kw)
    _close(got, want)
    for dq in (got[0], want[0]):
        assert torch.equal(dq[:, :, dead], torch.zeros_like(dq[:, :, dead]))
    if how == "inf":
        assert torch.equal(got[3][:, :, dead], torch.zeros_like(got[3][:, :, dead]))


# -------------------------------------------------------------------- public ops, end to end
def _api_grads(fn, leaves, ups, monkeypatch, mode):
    monkeypatch.setenv("HJPLUG_KERNEL", mode)
    xs = [t.detach().clone().requires_grad_(t.requires_grad) for t in leaves]
    outs = fn(*xs)
    loss = sum(torch.where(torch.isfinite(o), o * u, 0.0).sum()
               for o, u in zip(outs, ups, strict=True) if u is not None)
    wrt = [x for x in xs if x.requires_grad]
    return outs, torch.autograd.grad(loss, wrt, allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize(("Sq", "Sk", "H", "Hk", "causal", "window", "bias", "topk", "use"), [
    (37, 37, 4, 2, True, -1, "full", 3, "olew"),
    (21, 37, 2, 1, False, 6, "row", 2, "olew"),
    (21, 37, 2, 1, True, -1, "sqsk", 0, "e"),
    (1, 40, 4, 1, True, -1, None, 5, "w"),
    (20, 17, 2, 2, True, -1, "bool", 4, "ol"),  # rows without keys, k > visible keys
])
def test_public_attention_grads_triton_vs_reference(monkeypatch, Sq, Sk, H, Hk, causal, window,
                                                    bias, topk, use):
    import hjplug.kernels as K

    gen = torch.Generator().manual_seed(Sq + Sk + topk)
    q = torch.randn(2, H, Sq, 32, generator=gen, requires_grad=True)
    k = torch.randn(2, Hk, Sk, 32, generator=gen, requires_grad=True)
    v = torch.randn(2, Hk, Sk, 32, generator=gen, requires_grad=True)
    b = _bias(bias, 2, H, Sq, Sk, gen)
    if b is not None and b.is_floating_point():
        b.requires_grad_(True)
    leaves = [q, k, v] + ([b] if b is not None else [])

    def fn(q, k, v, b=None):
        r = hj_attention(q, k, v, causal=causal, bias=b, window=None if window < 0 else window,
                         topk=topk)
        return r.out, r.lse, r.entropy, r.topk_weights

    shapes = [(2, H, Sq, 32), (2, H, Sq), (2, H, Sq), (2, H, Sq, topk)]
    ups = [torch.randn(s, generator=gen) if c in use and (c != "w" or topk) else None
           for c, s in zip("olew", shapes, strict=True)]
    monkeypatch.setenv("HJPLUG_KERNEL", "triton")
    assert K.backend_for("hj_attention", q, k, v, head_dim=32).backend == "triton"
    _, got = _api_grads(fn, leaves, ups, monkeypatch, "triton")
    _, want = _api_grads(fn, leaves, ups, monkeypatch, "reference")
    _close(got, want, rel=1e-4, names=NAMES[: len(got)])


def test_public_attention_grads_use_the_triton_backward(monkeypatch):
    """With HJPLUG_KERNEL=triton the backward runs the Triton kernel, not the twin."""
    import hjplug.kernels.reference.hj_attention_bwd as ref_mod
    import hjplug.kernels.triton.hj_attention_bwd as tri_mod

    calls = []
    real = tri_mod.hj_attention_bwd

    def spy(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    def boom(*a, **kw):
        raise AssertionError("the reference twin ran")

    monkeypatch.setattr(tri_mod, "hj_attention_bwd", spy)
    monkeypatch.setattr(ref_mod, "hj_attention_bwd", boom)
    monkeypatch.setenv("HJPLUG_KERNEL", "triton")
    q, k, v = (torch.randn(1, 2, 9, 16, requires_grad=True) for _ in range(3))
    r = hj_attention(q, k, v, causal=True)
    (r.out.sum() + r.entropy.sum()).backward()
    assert calls and all(t.grad is not None for t in (q, k, v))


@pytest.mark.parametrize(("M", "N", "eps", "topk", "use"), [
    (37, 129, 0.5, 3, "vgew"), (1, 40, 2.0, 0, "vge"), (20, 33, 0.3, 4, "e"), (9, 50, 1.0, 2, "w"),
])
def test_public_hopf_cole_grads_triton_vs_reference(monkeypatch, M, N, eps, topk, use):
    """The Triton path multiplies in tf32 (operands rounded to nearest once, as its forward):
    compared with the reference on the rounded x and W."""
    from hjplug.kernels.triton.hopf_cole import round_tf32

    gen = torch.Generator().manual_seed(M + N)
    x = torch.randn(M, 32, generator=gen, requires_grad=True)
    W = torch.randn(N, 32, generator=gen, requires_grad=True)
    b = torch.randn(N, generator=gen, requires_grad=True)

    def fn(x, W, b):
        r = hopf_cole(x, W, b, eps, topk=topk)
        return r.value, r.grad, r.entropy, r.topk_weights

    shapes = [(M,), (M, 32), (M,), (M, topk)]
    ups = [torch.randn(s, generator=gen) if c in use and (c != "w" or topk) else None
           for c, s in zip("vgew", shapes, strict=True)]
    _, got = _api_grads(fn, [x, W, b], ups, monkeypatch, "triton")
    xr, Wr = round_tf32(x.detach()), round_tf32(W.detach())
    _, want = _api_grads(fn, [xr.requires_grad_(), Wr.requires_grad_(), b], ups, monkeypatch,
                         "reference")
    _close(got, want, rel=1e-3, names=("dx", "dW", "db"))


def test_public_attention_grads_expanded_bias_view(monkeypatch):
    """bias = a per-key row expanded to [B, H, Sq, Sk] (a stride-0 view, its gradient summed by
    autograd over the expanded dims)."""
    row = torch.randn(1, 1, 1, 21, requires_grad=True)
    q = torch.randn(1, 2, 13, 16)
    k, v = (torch.randn(1, 2, 21, 16) for _ in range(2))

    def fn(q, k, v, row):
        r = hj_attention(q, k, v, bias=row.expand(1, 2, 13, 21), causal=True)
        return r.out, r.lse, r.entropy

    ups = [torch.randn(1, 2, 13, 16), torch.randn(1, 2, 13), torch.randn(1, 2, 13)]
    _, got = _api_grads(fn, [q, k, v, row], ups, monkeypatch, "triton")
    _, want = _api_grads(fn, [q, k, v, row], ups, monkeypatch, "reference")
    _close(got, want, rel=1e-4, names=("drow",))
