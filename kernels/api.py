"""The public kernel entry points: validate, then call the `hjplug::<op>` custom op (which
dispatches to Triton or the reference twin through the registry).

Shapes, dtypes, devices and ε are validated; values are not: a NaN input gives NaN in the rows it
reaches (as torch's own ops do; a NaN check would read every input and synchronise the GPU on
every call). The instrumentation flags such rows in its `nan` statistic."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from hjplug.kernels import ops
from hjplug.kernels._checks import check_attention, check_eps_values, check_hopf_cole
from hjplug.kernels.records import HJAttentionOutput, HopfColeOutput
from hjplug.kernels.reference.entropy_sweep import check_sweep

__all__ = ["entropy_sweep", "hj_attention", "hopf_cole"]


def hj_attention(q: Tensor, k: Tensor, v: Tensor, *, scale: float | None = None,
                 causal: bool = False, bias: Tensor | None = None, window: int | None = None,
                 topk: int = 0) -> HJAttentionOutput:
    """One HJ attention step with its ε-statistics (see HJAttentionOutput), ε = 1/scale.

    q [B, H, Sq, D]; k, v [B, Hk, Sk, D] with Hk | H (grouped-query); scale defaults to 1/√D;
    bias broadcastable to [B, H, Sq, Sk] (additive float, −inf = removed; or bool, True = keep);
    causal aligned bottom-right (KV cache); window w keeps |i + Sk − Sq − j| < w (query i at
    absolute position i + Sk − Sq; j ≤ i + Sk − Sq when causal). Top-k among exactly equal
    weights: the Triton kernel keeps the lowest key indices (in ascending order), the reference
    twin torch.topk's order.
    A row with no visible key (all removed, or causal / window leaving none): out = 0,
    lse = −inf, entropy 0 as a fill value (H of an empty distribution is undefined; the
    instrumentation records NaN there), top-k weights 0 with index −1; its gradients are 0.
    """
    scale_f, win = check_attention(q, k, v, scale, bias, window, topk)
    out, lse, ent, tw, ti, _ = ops.hj_attention_op(q, k, v, bias, scale_f, bool(causal), win, topk)
    return HJAttentionOutput(out, lse, ent, tw if topk else None, ti if topk else None)


def hopf_cole(x: Tensor, W: Tensor, b: Tensor, eps: float = 1.0, *, topk: int = 0
              ) -> HopfColeOutput:
    """f_ε(x) = ε·LSE((x Wᵀ + b)/ε) [M], ∇f = Σ π_j W_j [M, d], H(π) [M], optional top-k π.

    x [M, d], W [N, d], b [N]; streams over the N atoms (the M×N logits are never stored).
    Precision: fp32 inputs on CUDA multiply in TF32 (x and W rounded to nearest TF32 first, fp32
    accumulation), so the error matches cuBLAS with TF32 on: relative (norm) errors against
    fp64 ≈ 1.1e-5 value, 4e-4 gradient, 5e-5 entropy at N = 16384, d = 128 (H200,
    benchmarks/gpu_check.json; PyTorch TF32: 1.1e-5, 4.2e-4, 5.2e-5); for
    exact fp32 run the reference twin (HJPLUG_KERNEL=reference). bf16 / fp16 multiply in their
    own precision with fp32 accumulation; lse, entropy and the merge are fp32 throughout.
    """
    e = check_hopf_cole(x, W, b, eps, topk)
    value, grad, ent, tw, ti, _ = ops.hopf_cole_op(x, W, b, e, topk)
    return HopfColeOutput(value, grad, ent, tw if topk else None, ti if topk else None)


def entropy_sweep(logits: Tensor | None = None, eps: Sequence[float] | Tensor = (1.0,), *,
                  q: Tensor | None = None, k: Tensor | None = None, causal: bool = False
                  ) -> Tensor:
    """H(softmax(z/ε_k)) for K values ε_k in one pass: logits [..., N] → [..., K], or
    q [B, H, Sq, D], k [B, Hk, Sk, D] (z = q·kᵀ unscaled; ε = √D is standard attention)
    → [B, H, Sq, K]."""
    check_sweep(logits, q, k)
    ev = check_eps_values(eps)
    return ops.entropy_sweep_op(logits, ev, q, k, bool(causal))
