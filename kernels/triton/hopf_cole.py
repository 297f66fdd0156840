"""Fused Hopf–Cole propagator (LSE layer) in Triton, on the HJ attention kernel.

    f_ε(x) = ε·LSE((x Wᵀ + b)/ε),  ∇_x f = Σ_j π_j W_j,  H(π)

is one attention row with q = x, k = v = W (loaded once: KV_SAME), scale = 1/ε and a per-atom
bias b/ε (one row vector, broadcast: BIAS_ROW). Atoms are streamed in tiles and split across
programs when M is small, so the M×N logits never exist: memory O((M + N)·d).
fp32 inputs multiply in tf32 by default, rounded to nearest first (the MMA itself truncates),
which matches cuBLAS's tf32 error; precision="ieee" for full fp32.
Backward: the fused closed-form attention backward with k = v = W (kernels/_backward.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.kernels.records import HopfColeOutput
from hjplug.kernels.triton.hj_attention import hj_attention_fwd_parts

__all__ = ["HopfColeFunction", "hopf_cole", "hopf_cole_fwd", "hopf_cole_fwd_parts", "round_tf32"]


def hopf_cole_fwd(x: Tensor, W: Tensor, b: Tensor, eps: float, topk: int, *,
                  precision: str = "tf32", splits: int | None = None
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """(value [M], grad [M, d], entropy [M], topk weights, topk indices)."""
    return hopf_cole_fwd_parts(x, W, b, eps, topk, precision=precision, splits=splits)[:5]


def hopf_cole_fwd_parts(x: Tensor, W: Tensor, b: Tensor, eps: float, topk: int, *,
                        precision: str = "tf32", splits: int | None = None
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None, Tensor]:
    """`hopf_cole_fwd` and each row's lse_parts [M, 2] = (m, log₂ l) of z = (xWᵀ + b)/ε."""
    M, d = x.shape
    N = W.shape[0]
    rnd = precision == "tf32" and x.dtype == torch.float32
    if rnd:  # tf32 MMAs truncate fp32 operands: round them to nearest once (O((M+N)·d))
        x, W = round_tf32(x), round_tf32(W)
    q = x.reshape(1, 1, M, d)  # [1, 1, M, d]
    kw = W.reshape(1, 1, N, d)  # [1, 1, N, d]  (keys = values = atoms)
    bias = (b.to(torch.float32) / eps).view(1, 1, 1, N)  # broadcast over rows
    out, lse, ent, tw, ti, pa = hj_attention_fwd_parts(q, kw, kw, bias, 1.0 / eps, False, -1,
                                                       topk, kv_same=True, precision=precision,
                                                       splits=splits, round_p=rnd)
    value = lse.view(M) * eps
    return (value, out.view(M, d), ent.view(M),
            None if tw is None else tw.view(M, tw.shape[-1]),
            None if ti is None else ti.view(M, ti.shape[-1]), pa.view(M, 2))


def round_tf32(t: Tensor) -> Tensor:
    """Round fp32 to the nearest tf32 value (10-bit mantissa), ties away from zero."""
    bits = t.contiguous().view(torch.int32)
    return ((bits + 0x1000) & -8192).view(torch.float32)


def hopf_cole(x: Tensor, W: Tensor, b: Tensor, eps: float = 1.0, *, topk: int = 0
              ) -> HopfColeOutput:
    from hjplug.kernels._checks import check_hopf_cole

    e = check_hopf_cole(x, W, b, eps, topk)
    value, grad, ent, tw, ti = HopfColeFunction.apply(x, W, b, e, topk)
    return HopfColeOutput(value, grad, ent, tw if topk else None, ti if topk else None)


class HopfColeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, W, b, eps, topk):  # type: ignore[override]
        ctx.cfg = (eps, topk)
        value, grad, ent, tw, ti, pa = hopf_cole_fwd_parts(x, W, b, eps, topk)
        if tw is None:
            tw = value.new_empty((value.shape[0], 0))
            ti = torch.empty((value.shape[0], 0), dtype=torch.long, device=value.device)
        ctx.save_for_backward(x, W, b, value, grad, ent, tw, ti, pa)
        ctx.mark_non_differentiable(ti)
        return value, grad, ent, tw, ti

    @staticmethod
    def backward(ctx, g_val, g_grad, g_ent, g_tw, g_ti):  # type: ignore[override]
        from hjplug.kernels._backward import hopf_cole_grads

        eps, topk = ctx.cfg
        saved = ctx.saved_tensors
        grads = hopf_cole_grads(saved[:3], saved[3:], eps, topk, ctx.needs_input_grad[:3],
                                (g_val, g_grad, g_ent, g_tw if topk else None),
                                saved[0].dtype == torch.float32)  # this forward: TF32 on fp32
        return (*grads, None, None)
