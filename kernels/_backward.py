"""Backward of the fused ops: closed form from the saved forward statistics (no recompute of
the forward, no autograd graph over scores).

hj_attention / hopf_cole: π is rebuilt from the saved lse_parts (m, log₂ l) inside the fused
backward
(`hj_attention_bwd`: Triton on CUDA, the chunked reference twin otherwise, via the registry), so
time is one flash-style backward and memory O((Sq + Sk)·D) beside the inputs (O((M + N)·d) for
Hopf–Cole); the entropy's gradient is one more multiply-add per score. Top-k weights add a sparse
term (`topk_grad`). entropy_sweep differentiates through its reference twin (`_vjp`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hjplug.kernels import registry
from hjplug.kernels.reference.hj_attention_bwd import one_row, reduce_to, row_terms
from hjplug.kernels.topk_grad import topk_grad

__all__ = ["attention_grads", "hopf_cole_grads", "hopf_cole_tf32"]

Grad = Tensor | None


def _vjp(fn, inputs: Sequence[Tensor | None], needs: Sequence[bool],
         outs_grads: Sequence[Tensor | None]) -> tuple[Tensor | None, ...]:
    """Gradients by recompute: run `fn` under autograd and pull `outs_grads` back."""
    with torch.enable_grad():
        leaves = [None if t is None else t.detach().requires_grad_(bool(n) and
                                                                    t.is_floating_point())
                  for t, n in zip(inputs, needs, strict=True)]
        outs = fn(*leaves)
        pairs = [(o, g) for o, g in zip(outs, outs_grads, strict=False)
                 if o is not None and g is not None and o.requires_grad]
        wrt = [t for t in leaves if t is not None and t.requires_grad]
        if not pairs or not wrt:
            return tuple(None for _ in inputs)
        grads = torch.autograd.grad([o for o, _ in pairs], wrt, [g for _, g in pairs],
                                    allow_unused=True)
    it = iter(grads)
    return tuple(next(it) if t is not None and t.requires_grad else None for t in leaves)


@torch.library.custom_op("hjplug::hj_attention_backward", mutates_args=())
def hj_attention_backward_op(
    q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float, causal: bool,
    window: int, parts: Tensor, g_out: Tensor | None, c: Tensor, gh: Tensor, needs_bias: bool,
    kv_same: bool, precision: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, dbias) of the fused backward as one op (so torch.compile / export see one
    node): Triton on CUDA, the chunked twin otherwise; parts: the forward's lse_parts
    [B, H, Sq, 2]. kv_same: v is k (Hopf–Cole), dk is the
    whole gradient and dv is empty; dbias is empty unless needs_bias. precision "tf32" (fp32
    only, the Hopf–Cole forward's mode): operands rounded to tf32 first, as the forward did."""
    why = None if v.shape[-1] == q.shape[-1] else "value head dim differs from query head dim"
    choice = registry.resolve("hj_attention_bwd", q, k, v, head_dim=q.shape[-1],
                              unsupported=why)
    if choice.backend == "triton":
        from hjplug.kernels.triton.hj_attention_bwd import hj_attention_bwd

        if precision == "tf32" and q.dtype == torch.float32:
            from hjplug.kernels.triton.hopf_cole import round_tf32

            q, k = round_tf32(q), round_tf32(k)
    else:
        from hjplug.kernels.reference.hj_attention_bwd import hj_attention_bwd
    dq, dk, dv, db = hj_attention_bwd(q, k, k if kv_same else v, bias, scale, causal, window,
                                      parts, g_out, c, gh, needs_bias, precision, kv_same)
    none = q.new_empty((0,))
    return (dq.contiguous(), dk.contiguous(), none if dv is None else dv.contiguous(),
            none.clone() if db is None else db.contiguous())


@hj_attention_backward_op.register_fake
def _(q, k, v, bias, scale, causal, window, parts, g_out, c, gh, needs_bias, kv_same,
      precision):
    want_db = needs_bias and bias is not None and bias.is_floating_point()
    return (q.new_empty(q.shape), k.new_empty(k.shape),  # contiguous, as the real outputs
            q.new_empty((0,)) if kv_same else v.new_empty(v.shape),
            bias.new_empty(bias.shape) if want_db else q.new_empty((0,)))


def _add(a: Tensor | None, extra: Tensor) -> Tensor | None:
    """a + extra summed in the wider dtype, returned in a's dtype."""
    if a is None:
        return None
    return (a.to(extra.dtype) + extra).to(a.dtype)


def attention_grads(inputs: Sequence[Tensor | None], outputs: Sequence[Tensor],
                    cfg: tuple, needs: Sequence[bool], grads: Sequence[Tensor | None]
                    ) -> tuple[Grad, Grad, Grad, Grad]:
    """(dq, dk, dv, dbias) given the forward's inputs (q, k, v, bias), outputs
    (out, lse, entropy, topk_weights, topk_indices, lse_parts) and the grads of the first four
    outputs."""
    q, k, v, bias = inputs
    assert q is not None and k is not None and v is not None
    out, _, ent, tw, ti, parts = outputs
    scale, causal, window, topk = cfg
    g_out, g_lse, g_ent, g_tw = grads
    needs_bias = bool(needs[3]) and bias is not None and bias.is_floating_point()
    if not (any(needs[:3]) or needs_bias):
        return None, None, None, None
    c, gh = row_terms(out, parts, ent, g_out, g_lse, g_ent)
    tg = None
    if topk and g_tw is not None and tw.numel():
        tg = topk_grad(q, k, scale, tw, ti, g_tw, needs_bias, one_row(bias))
        c = c + tg.c.to(c.dtype)
    dq, dk, dv, db = hj_attention_backward_op(q, k, v, bias, scale, causal, window, parts,
                                              g_out, c, gh, needs_bias, False, "ieee")
    if tg is not None:
        dq, dk = _add(dq, tg.dq), _add(dk, tg.dk)
        if db is not None and tg.dbias is not None:
            assert bias is not None
            db = _add(db, reduce_to(tg.dbias, bias.shape))
    return (dq if needs[0] else None, dk if needs[1] else None, dv if needs[2] else None,
            db if needs_bias else None)


def hopf_cole_tf32(x: Tensor, W: Tensor, b: Tensor, topk: int) -> bool:
    """Whether the forward ran fp32 in TF32 on rounded operands: on Triton (the dispatch of
    ops.hopf_cole_op; top-k > 32 falls back to the exact reference). Asked when the forward
    runs (setup_context), so a later change of HJPLUG_KERNEL cannot mislead the backward."""
    return x.dtype == torch.float32 and registry.choose(
        "hopf_cole", x, W, b, head_dim=x.shape[-1], topk=topk).backend == "triton"


def hopf_cole_grads(inputs: Sequence[Tensor], outputs: Sequence[Tensor], eps: float,
                    topk: int, needs: Sequence[bool], grads: Sequence[Tensor | None],
                    tf32: bool | None = None) -> tuple[Grad, Grad, Grad]:
    """(dx, dW, db) given (x, W, b), outputs (value, grad, entropy, topk_weights, indices,
    lse_parts) and the grads of the first four. One attention row per x: q = x, k = v = W (one
    tensor, so the fused backward returns dW = dk + dv as dk), bias = b/ε, scale = 1/ε (the
    forward's own bias and scale, so the backward's scores are the forward's), g_lse = ε·g_value;
    db = dbias/ε."""
    x, W, b = inputs
    _, grad, ent, tw, ti, parts = outputs
    g_val, g_grad, g_ent, g_tw = grads
    if not any(needs[:3]):
        return None, None, None
    M, d = x.shape
    N = W.shape[0]
    ct = parts.dtype
    q = x.reshape(1, 1, M, d)
    kw = W.reshape(1, 1, N, d)
    bias = (b.to(ct) / eps).reshape(1, 1, 1, N)
    parts4 = parts.reshape(1, 1, M, 2)
    c, gh = row_terms(grad.reshape(1, 1, M, d), parts4, ent.reshape(1, 1, M),
                      None if g_grad is None else g_grad.reshape(1, 1, M, d),
                      None if g_val is None else (g_val * eps).reshape(1, 1, M),
                      None if g_ent is None else g_ent.reshape(1, 1, M))
    if tf32 is None:  # the forward's mode, when the caller did not record it
        tf32 = hopf_cole_tf32(x, W, b, topk)
    tg = None
    if topk and g_tw is not None and tw.numel():
        kk = tw.shape[-1]
        qt, kt = q, kw
        if tf32:
            from hjplug.kernels.triton.hopf_cole import round_tf32  # the forward's operands

            qt, kt = round_tf32(q), round_tf32(kw)
        tg = topk_grad(qt, kt, 1.0 / eps, tw.reshape(1, 1, M, kk), ti.reshape(1, 1, M, kk),
                       g_tw.reshape(1, 1, M, kk), bool(needs[2]), one_row=True)
        c = c + tg.c.to(c.dtype)
    g_out = None if g_grad is None else g_grad.reshape(1, 1, M, d)
    dq, dk, _, dbias = hj_attention_backward_op(q, kw, kw, bias, 1.0 / eps, False, -1, parts4,
                                                g_out, c, gh, bool(needs[2]), True,
                                                "tf32" if tf32 else "ieee")
    if tg is not None:
        dq, dk = _add(dq, tg.dq), _add(dk, tg.dk)
        if dbias is not None and tg.dbias is not None:
            dbias = _add(dbias, reduce_to(tg.dbias, bias.shape))
    dx = dq.reshape(M, d).to(x.dtype) if needs[0] else None
    dW = dk.reshape(N, d).to(W.dtype) if needs[1] else None
    db = (dbias.to(ct) / eps).reshape(N).to(b.dtype) if needs[2] else None
    return dx, dW, db
