"""Backward of the fused ops by recompute through the reference twins (no fused backward yet).

Cost: one chunked reference forward in fp32 plus its autograd backward, which keeps every
chunk's probabilities: O(B·H·Sq·Sk) time and memory for attention, O(M·N) for Hopf–Cole.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["attention_vjp", "hopf_cole_vjp"]


def _vjp(fn, inputs: Sequence[Tensor | None], needs: Sequence[bool],
         outs_grads: Sequence[Tensor | None]) -> tuple[Tensor | None, ...]:
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


def attention_vjp(saved: Sequence[Tensor | None], cfg: tuple, needs: Sequence[bool],
                  grads: Sequence[Tensor | None]) -> tuple[Tensor | None, ...]:
    """Gradients for (q, k, v, bias) given grads of (out, lse, entropy, topk_weights)."""
    from hjplug.kernels.reference.hj_attention import hj_attention

    scale, causal, window, topk = cfg

    def fn(q, k, v, bias):
        r = hj_attention(q, k, v, scale=scale, causal=causal, bias=bias,
                         window=None if window < 0 else window, topk=topk)
        return r.out, r.lse, r.entropy, r.topk_weights

    return _vjp(fn, saved, needs, grads)


def hopf_cole_vjp(saved: Sequence[Tensor | None], eps: float, topk: int, needs: Sequence[bool],
                  grads: Sequence[Tensor | None]) -> tuple[Tensor | None, ...]:
    """Gradients for (x, W, b) given grads of (value, grad, entropy, topk_weights)."""
    from hjplug.kernels.reference.hopf_cole import hopf_cole

    def fn(x, W, b):
        r = hopf_cole(x, W, b, eps, topk=topk)
        return r.value, r.grad, r.entropy, r.topk_weights

    return _vjp(fn, saved, needs, grads)
