"""torch.library custom ops `hjplug::<op>` with fake implementations (one node under export,
compile and capture). Each op dispatches through the registry inside its implementation, so a
captured graph is backend-agnostic. Autograd: hj_attention and hopf_cole use the fused
closed-form backward from the saved statistics, itself one op `hjplug::hj_attention_backward`
(`_backward`); entropy_sweep recomputes through its reference twin.

Schemas (all outputs new tensors; topk = 0 gives empty [..., 0] top-k outputs):
    hj_attention(q, k, v, bias?, scale, causal, window (−1 none), topk)
        -> (out, lse, entropy, topk_weights, topk_indices, lse_parts)
    hopf_cole(x, W, b, eps, topk) -> (value, grad, entropy, topk_weights, topk_indices,
                                      lse_parts)
lse_parts [..., 2] = (m, log₂ l) per row, base 2 (log₂ Z = m + log₂ l, m = the row's largest
score as the forward computed it): what the backward and top-k rebuild π from, so log l is not
lost in the rounding of a large |lse| (kernels/reference/_online.py). The public API drops it.
    entropy_sweep(logits?, eps[], q?, k?, causal) -> entropies [..., K]
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.kernels import registry
from hjplug.kernels._backward import _vjp, attention_grads, hopf_cole_grads, hopf_cole_tf32
from hjplug.kernels._checks import stats_dtype

__all__ = ["entropy_sweep_op", "hj_attention_op", "hopf_cole_op"]

Out6 = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]


def _empty_topk(rows: tuple[int, ...], like: Tensor) -> tuple[Tensor, Tensor]:
    return (like.new_empty((*rows, 0)),
            torch.empty((*rows, 0), dtype=torch.long, device=like.device))


# ------------------------------------------------------------------------------- hj_attention
@torch.library.custom_op("hjplug::hj_attention", mutates_args=())
def hj_attention_op(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float,
                    causal: bool, window: int, topk: int) -> Out6:
    extra = None if v.shape[-1] == q.shape[-1] else "value head dim differs from query head dim"
    tensors = (q, k, v) if bias is None else (q, k, v, bias)
    c = registry.resolve("hj_attention", *tensors, head_dim=q.shape[-1], topk=topk,
                         unsupported=extra)
    if c.backend == "triton":
        from hjplug.kernels.triton.hj_attention import hj_attention_fwd_parts

        out, lse, ent, tw, ti, parts = hj_attention_fwd_parts(q, k, v, bias, scale, causal,
                                                              window, topk)
    else:
        from hjplug.kernels.reference.hj_attention import hj_attention_parts

        (out, lse, ent, tw, ti), parts = hj_attention_parts(
            q, k, v, scale=scale, causal=causal, bias=bias,
            window=None if window < 0 else window, topk=topk)
    if tw is None or ti is None:
        tw, ti = _empty_topk(lse.shape, lse)
    return (out.contiguous(), lse.contiguous(), ent.contiguous(), tw.contiguous(),
            ti.contiguous(), parts.contiguous())


@hj_attention_op.register_fake
def _(q, k, v, bias, scale, causal, window, topk):
    B, H, Sq, _ = q.shape
    sd = stats_dtype(q.dtype)
    return (q.new_empty((B, H, Sq, v.shape[-1])), q.new_empty((B, H, Sq), dtype=sd),
            q.new_empty((B, H, Sq), dtype=sd), q.new_empty((B, H, Sq, topk), dtype=sd),
            q.new_empty((B, H, Sq, topk), dtype=torch.long), q.new_empty((B, H, Sq, 2), dtype=sd))


def _attn_setup(ctx, inputs, output):
    q, k, v, bias, scale, causal, window, topk = inputs
    ctx.save_for_backward(q, k, v, bias, *output)
    ctx.cfg = (scale, causal, window, topk)


def _attn_backward(ctx, g_out, g_lse, g_ent, g_tw, g_ti, g_parts):
    saved = ctx.saved_tensors
    grads = attention_grads(saved[:4], saved[4:], ctx.cfg, ctx.needs_input_grad[:4],
                            (g_out, g_lse, g_ent, g_tw if ctx.cfg[3] else None))
    return (*grads, None, None, None, None)


hj_attention_op.register_autograd(_attn_backward, setup_context=_attn_setup)


# ---------------------------------------------------------------------------------- hopf_cole
@torch.library.custom_op("hjplug::hopf_cole", mutates_args=())
def hopf_cole_op(x: Tensor, W: Tensor, b: Tensor, eps: float, topk: int) -> Out6:
    c = registry.resolve("hopf_cole", x, W, b, head_dim=x.shape[-1], topk=topk)
    if c.backend == "triton":
        from hjplug.kernels.triton.hopf_cole import hopf_cole_fwd_parts

        value, grad, ent, tw, ti, parts = hopf_cole_fwd_parts(x, W, b, eps, topk)
    else:
        from hjplug.kernels.reference.hopf_cole import hopf_cole_parts

        (value, grad, ent, tw, ti), parts = hopf_cole_parts(x, W, b, eps, topk=topk)
    if tw is None or ti is None:
        tw, ti = _empty_topk(value.shape, value)
    return (value.contiguous(), grad.contiguous(), ent.contiguous(), tw.contiguous(),
            ti.contiguous(), parts.contiguous())


@hopf_cole_op.register_fake
def _(x, W, b, eps, topk):
    M = x.shape[0]
    sd = stats_dtype(x.dtype)
    return (x.new_empty((M,), dtype=sd), x.new_empty(x.shape), x.new_empty((M,), dtype=sd),
            x.new_empty((M, topk), dtype=sd), x.new_empty((M, topk), dtype=torch.long),
            x.new_empty((M, 2), dtype=sd))


def _hc_setup(ctx, inputs, output):
    x, W, b, eps, topk = inputs
    ctx.save_for_backward(x, W, b, *output)
    ctx.cfg = (eps, topk, hopf_cole_tf32(x, W, b, topk))  # the mode the forward ran in


def _hc_backward(ctx, g_val, g_grad, g_ent, g_tw, g_ti, g_parts):
    eps, topk, tf32 = ctx.cfg
    saved = ctx.saved_tensors
    grads = hopf_cole_grads(saved[:3], saved[3:], eps, topk, ctx.needs_input_grad[:3],
                            (g_val, g_grad, g_ent, g_tw if topk else None), tf32)
    return (*grads, None, None)


hopf_cole_op.register_autograd(_hc_backward, setup_context=_hc_setup)


# ------------------------------------------------------------------------------ entropy_sweep
@torch.library.custom_op("hjplug::entropy_sweep", mutates_args=())
def entropy_sweep_op(logits: Tensor | None, eps: list[float], q: Tensor | None,
                     k: Tensor | None, causal: bool) -> Tensor:
    ev = torch.tensor(eps, dtype=torch.float64)
    if logits is not None:
        c = registry.resolve("entropy_sweep", logits)
    else:
        assert q is not None and k is not None
        c = registry.resolve("entropy_sweep", q, k, head_dim=q.shape[-1])
    if c.backend == "triton":
        from hjplug.kernels.triton.entropy_sweep import entropy_sweep_fwd

        out = entropy_sweep_fwd(logits, ev, q=q, k=k, causal=causal)
        src = logits if logits is not None else q
        assert src is not None
        return out.to(stats_dtype(src.dtype))
    from hjplug.kernels.reference.entropy_sweep import entropy_sweep

    return entropy_sweep(logits, ev, q=q, k=k, causal=causal).contiguous()


@entropy_sweep_op.register_fake
def _(logits, eps, q, k, causal):
    if logits is not None:
        return logits.new_empty((*logits.shape[:-1], len(eps)), dtype=stats_dtype(logits.dtype))
    return q.new_empty((*q.shape[:-1], len(eps)), dtype=stats_dtype(q.dtype))


def _sw_setup(ctx, inputs, output):
    logits, eps, q, k, causal = inputs
    ctx.save_for_backward(logits, q, k)
    ctx.cfg = (list(eps), causal)


def _sw_backward(ctx, g):
    from hjplug.kernels.reference.entropy_sweep import entropy_sweep

    eps, causal = ctx.cfg
    logits, q, k = ctx.saved_tensors
    n = ctx.needs_input_grad

    def fn(lg, qq, kk):
        return (entropy_sweep(lg, eps, q=qq, k=kk, causal=causal),)

    gl, gq, gk = _vjp(fn, (logits, q, k), (n[0], n[2], n[3]), (g,))
    return gl, None, gq, gk, None


entropy_sweep_op.register_autograd(_sw_backward, setup_context=_sw_setup)
