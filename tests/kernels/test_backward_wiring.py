"""How the fused backward is wired (review findings, each reproduced first): one tensor as both
keys and values, the custom op's fake outputs against real strided inputs, the top-k bias
gradient's size, and graph-attached statistics reaching only the recorders that asked."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch

from hjplug.kernels import api

F64 = torch.float64


def test_one_tensor_as_keys_and_values() -> None:
    """hj_attention(q, x, x): x's gradient is dk + dv (it crashed: the op returned dv empty)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 9, 8, generator=g, dtype=F64, requires_grad=True)
    x = torch.randn(1, 2, 9, 8, generator=g, dtype=F64, requires_grad=True)
    r = api.hj_attention(q, x, x, causal=True)
    (gx,) = torch.autograd.grad(r.out.sum() + r.entropy.sum(), [x])
    k, v = x.detach().clone().requires_grad_(True), x.detach().clone().requires_grad_(True)
    r2 = api.hj_attention(q, k, v, causal=True)
    gk, gv = torch.autograd.grad(r2.out.sum() + r2.entropy.sum(), [k, v])
    torch.testing.assert_close(gx, gk + gv, rtol=1e-12, atol=1e-12)


def test_backward_op_fake_matches_real_on_strided_inputs() -> None:
    """torch.library.opcheck on hjplug::hj_attention_backward with HF-layout (transposed) q/k/v
    and a permuted full bias: the fake outputs must have the real outputs' (contiguous)
    strides, or inductor asserts on them."""
    from hjplug.kernels._backward import hj_attention_backward_op
    from hjplug.kernels.reference.hj_attention import hj_attention_parts
    from hjplug.kernels.reference.hj_attention_bwd import row_terms

    g = torch.Generator().manual_seed(1)
    B, H, S, D = 1, 4, 5, 8
    q, k, v = (torch.randn(B, S, H, D, generator=g).transpose(1, 2) for _ in range(3))
    bias = torch.randn(B, H, S, S, generator=g).permute(0, 1, 3, 2)
    r, pa = hj_attention_parts(q, k, v, bias=bias)
    go = torch.randn(B, H, S, D, generator=g)
    c, gh = row_terms(r.out, pa, r.entropy, go, None, torch.randn(B, H, S, generator=g))
    for args in ((q, k, v, None, 0.3, False, -1, pa, go, c, gh, False, False, "ieee"),
                 (q, k, v, bias, 0.3, True, -1, pa, go, c, gh, True, False, "ieee"),
                 (q, k, k, None, 0.3, False, -1, pa, go, c, gh, False, True, "tf32")):
        torch.library.opcheck(hj_attention_backward_op, args)


def test_topk_bias_gradient_of_a_one_row_bias_stays_one_row(monkeypatch) -> None:
    """Hopf–Cole's b (one row): the top-k part of db is [1, 1, 1, N], never M×N."""
    from hjplug.kernels import _backward
    from hjplug.kernels import topk_grad as tg_mod

    shapes = []
    real = tg_mod.topk_grad

    def spy(*a, **kw):
        out = real(*a, **kw)
        shapes.append(tuple(out.dbias.shape))
        return out

    monkeypatch.setattr(_backward, "topk_grad", spy)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 8, generator=g, dtype=F64, requires_grad=True)
    W = torch.randn(300, 8, generator=g, dtype=F64, requires_grad=True)
    b = torch.randn(300, generator=g, dtype=F64, requires_grad=True)
    r = api.hopf_cole(x, W, b, 0.5, topk=3)
    db_fused = torch.autograd.grad(r.topk_weights.sum() + r.value.sum(), [b])[0]
    assert shapes == [(1, 1, 1, 300)]
    bb = b.detach().requires_grad_(True)
    z = (x.detach() @ W.detach().T + bb) / 0.5
    p = torch.softmax(z, -1)
    want = torch.autograd.grad(p.topk(3, -1).values.sum() + 0.5 * torch.logsumexp(z, -1).sum(),
                               [bb])[0]
    torch.testing.assert_close(db_fused, want, rtol=1e-10, atol=1e-12)


def test_graph_statistics_reach_only_recorders_that_asked() -> None:
    """instrument(grad=True) beside a plain record() callback and enable(stats=True): the plain
    consumers and `last_stats` get detached statistics (no forward graph kept alive)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passes"))
    import hjzoo

    import hjplug
    from hjplug.integrations.huggingface import enable, last_stats, record

    warnings.simplefilter("ignore", UserWarning)
    model, inputs = hjzoo.ZOO_HF["llama"]()
    model = enable(model, inplace=True, stats=True)
    seen: list[bool] = []
    with record(model, lambda st: seen.append(st.entropy.requires_grad)), \
            hjplug.instrument(model, stats=("entropy",), readouts=False, grad=True) as rec:
        model(**inputs, use_cache=False)
    assert seen and not any(seen)
    assert rec["layers.0.attn.entropy"].requires_grad
    assert not any(st.entropy.requires_grad for st in last_stats(model))
