"""Statistics-only observation of an HJAttentionStep: the fused `hj_attention` kernel's outputs.

With z_ij = q_i·k_j/ε + (ε₀/ε)·b_ij (−inf = removed key; see attention_bias.py) and
π_i = softmax(z_i):

    lse_i = log Σ_j e^{z_ij},   H_i = lse_i − E_π[z_i],   k_i = #{j : z_ij > −∞}

When an observer asks for these statistics only (`HJAttentionStep.observe_stats`), the step runs
`hjplug.kernels.hj_attention` (Triton on CUDA, the blockwise reference elsewhere): O(queries)
memory per head, no [Sq, Sk] scores. Calls the kernel cannot take (ε = 0, tensors that are not
3-/4-D, masks not broadcastable to [B, H, Sq, Sk]) use the explicit evaluation and derive the same
statistics from its logits; on CUDA a one-time KernelFallbackWarning names the reason.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from hjplug.kernels.reference.topk import topk_weights
from hjplug.modules.attention_bias import is_removed

__all__ = [
    "AttentionStepStats", "KernelCall", "causal_mask", "empty_undefined", "explicit_stats",
    "kernel_call", "removed_to_inf", "visible_keys", "warn_fallback",
]

_WARNED: set[str] = set()


@dataclass(frozen=True)
class AttentionStepStats:
    """ε-statistics of one HJAttentionStep call (leading dims as the step's q: [B, H, Sq])."""

    lse: Tensor  # [B, H, Sq] log-partition of z (fp32, fp64 for fp64 inputs)
    entropy: Tensor  # [B, H, Sq] H(π_i) in nats; as emitted by a step NaN where k_i = 0
    keys: Tensor  # [B, H, Sq] int64 visible keys k_i
    epsilon: float  # the step's ε (z = q·k/ε + (ε₀/ε)·b)
    backend: str  # "triton" | "reference" (hj_attention) | "explicit" (matmul / softmax)
    reason: str  # why the explicit path ran ("" when the kernel ran)
    topk_weights: Tensor | None = None  # [B, H, Sq, k] the k largest π_ij (0 past the keys)
    topk_indices: Tensor | None = None  # [B, H, Sq, k] their key indices (−1: none)
    zmax: Tensor | None = None  # [B, H, Sq] ε = 0 only: max_j z₀_ij (value → ε₀·max z₀)


@dataclass(frozen=True)
class KernelCall:
    """One step call in hj_attention's form: 4-D q, k, v, one bias, the causal flag."""

    q: Tensor  # [B, H, Sq, D]
    k: Tensor  # [B, Hk, Sk, D]
    v: Tensor  # [B, Hk, Sk, Dv]
    bias: Tensor | None  # bool (True = keep) or additive float (−inf = removed), ≤ 4-D
    causal: bool  # hj_attention's causal band: only with Sq == Sk (see kernel_call)
    squeeze: bool  # the step's tensors were 3-D [B·H, S, D]: drop the leading 1 again

    def __post_init__(self) -> None:
        # hj_attention's band is bottom-right aligned, SDPA's is_causal top-left: they agree
        # only for Sq == Sk, so an offset causal call must carry its mask in `bias`.
        if self.causal and self.q.shape[2] != self.k.shape[2]:
            raise ValueError(f"KernelCall: causal with Sq = {self.q.shape[2]} ≠ Sk = "
                             f"{self.k.shape[2]} (pass causal_mask(Sq, Sk) as bias instead)")


def empty_undefined(entropy: Tensor, keys: Tensor) -> Tensor:
    """H_i, NaN where k_i = 0: a row with no visible key has no π, so H is undefined (the
    kernels and `explicit_stats` fill 0). HJAttentionStep emits every path's statistics so."""
    return torch.where(keys == 0, torch.full_like(entropy, math.nan), entropy)


def causal_mask(sq: int, sk: int, device: torch.device) -> Tensor:
    """[Sq, Sk] bool, True = keep: query i sees key j iff j ≤ i (SDPA's is_causal, top-left)."""
    return torch.ones(sq, sk, dtype=torch.bool, device=device).tril()


def removed_to_inf(b: Tensor) -> Tensor:
    """Float masks use finfo.min as −∞ (HF): make them −inf so removed keys are not atoms
    (the kernels' rule, `is_removed`: ≤ −10³⁰, also a stand-in the model scaled)."""
    if b.dtype == torch.bool:
        return b
    return torch.where(is_removed(b), torch.full_like(b, float("-inf")), b)


def _combined(masks: list[Tensor], dtype: torch.dtype) -> Tensor | None:
    if not masks:
        return None
    if len(masks) == 1:
        return removed_to_inf(masks[0])
    total: Tensor | None = None
    for m in masks:
        add = (torch.where(m, 0.0, float("-inf")).to(dtype) if m.dtype == torch.bool
               else removed_to_inf(m).to(dtype))
        total = add if total is None else total + add
    return total


def kernel_call(q: Tensor, k: Tensor, v: Tensor, masks: list[Tensor], causal: bool,
                eps: float, k_transposed: bool) -> KernelCall | str:
    """The call in hj_attention's form, or the reason it has none.

    causal is SDPA's is_causal (top-left: query i sees key j iff j ≤ i). hj_attention's causal
    band is bottom-right (j ≤ i + Sk − Sq): the flag is kept for Sq == Sk, where both agree
    (no mask materialised); for Sq ≠ Sk the top-left [Sq, Sk] mask goes into the bias."""
    if eps <= 0:
        return "ε = 0 (tropical limit: π is a hard max, no log-partition)"
    kk = k.transpose(-1, -2) if k_transposed else k
    if not (q.dim() == kk.dim() == v.dim() and q.dim() in (3, 4)):
        return f"q, k, v of ranks {q.dim()}/{kk.dim()}/{v.dim()} (expected 3-D or 4-D)"
    squeeze = q.dim() == 3
    if squeeze:  # [B·H, S, D] → [1, B·H, S, D]
        q, kk, v = q.unsqueeze(0), kk.unsqueeze(0), v.unsqueeze(0)
        masks = [m.unsqueeze(0) if m.dim() == 3 else m for m in masks]
    if not q.is_floating_point() or q.dtype != kk.dtype or q.dtype != v.dtype:
        return f"dtypes {q.dtype}/{kk.dtype}/{v.dtype}"
    if kk.shape[1] == 0 or q.shape[1] % kk.shape[1] or kk.shape[0] != q.shape[0]:
        return f"key heads {tuple(kk.shape)} not a divisor layout of query {tuple(q.shape)}"
    if causal and q.shape[2] != kk.shape[2]:
        masks = [*masks, causal_mask(q.shape[2], kk.shape[2], q.device)]
        causal = False
    bias = _combined(masks, q.dtype)
    if bias is not None:
        target = (q.shape[0], q.shape[1], q.shape[2], kk.shape[2])
        try:
            ok = bias.dim() <= 4 and torch.broadcast_shapes(bias.shape, target) == target
        except RuntimeError:
            ok = False
        if not ok:
            return f"mask of shape {tuple(bias.shape)} not broadcastable to {list(target)}"
    return KernelCall(q, kk, v, bias, causal, squeeze)


def visible_keys(call: KernelCall) -> Tensor:
    """k_i = visible keys per (batch, head, query): [B, H, Sq] int64."""
    B, H, Sq = call.q.shape[:3]
    Sk = call.k.shape[2]
    vis = torch.ones(1, 1, Sq, Sk, dtype=torch.bool, device=call.q.device)  # [1, 1, Sq, Sk]
    if call.bias is not None:
        b = call.bias
        vis = vis & (b if b.dtype == torch.bool else b > float("-inf"))
    if call.causal:  # Sq == Sk here (KernelCall): j ≤ i, SDPA's top-left band = the kernel's
        vis = vis & causal_mask(Sq, Sk, vis.device)
    return vis.sum(-1).expand(B, H, Sq).to(torch.long)


def warn_fallback(where: str, reason: str, on_cuda: bool) -> None:
    """One KernelFallbackWarning per reason, on CUDA only (CPU calls have no kernel to miss)."""
    if not on_cuda or reason in _WARNED:
        return
    from hjplug.kernels.registry import KernelFallbackWarning

    _WARNED.add(reason)
    warnings.warn(f"{where}: attention statistics from the explicit matmul/softmax path instead "
                  f"of hjplug.kernels.hj_attention: {reason}.", KernelFallbackWarning,
                  stacklevel=4)


def explicit_stats(z: Tensor, eps: float, topk: int, reason: str) -> AttentionStepStats:
    """Statistics from explicit logits z [..., Sq, Sk] (ε > 0: z = s/ε + (ε₀/ε)·b;
    ε = 0: z₀ = s/ε₀ + b).

    ε = 0: π = uniform over the argmax keys, H = log(#ties), lse = +inf (diverges as ε → 0),
    zmax = max_j z₀ (the HJ value ε·lse tends to ε₀·max_j z₀). Rows with k_i = 0: lse = −∞,
    H = 0 (the kernels' fill; HJAttentionStep emits NaN there), top-k weight 0 / index −1.
    """
    ct = torch.float64 if z.dtype == torch.float64 else torch.float32
    z = removed_to_inf(z.detach()).to(ct)  # finfo.min stand-ins → −inf (removed keys)
    if z.dim() == 3:
        z = z.unsqueeze(0)  # [1, B·H, Sq, Sk]
    keys = (z > float("-inf")).sum(-1)  # [B, H, Sq]
    empty = keys == 0
    zs = z.masked_fill(empty.unsqueeze(-1), 0.0)
    if eps > 0:
        lse = torch.logsumexp(zs, dim=-1)  # [B, H, Sq]
        logp = zs - lse.unsqueeze(-1)
        p = logp.exp().masked_fill(empty.unsqueeze(-1), 0.0)  # π [B, H, Sq, Sk]
        ent = -(p * logp.clamp_min(-1.0e4)).sum(-1)
        lse = lse.masked_fill(empty, float("-inf"))
    else:
        top = zs.amax(-1, keepdim=True)
        p = ((zs == top) & ~empty.unsqueeze(-1)).to(ct)
        ties = p.sum(-1)
        p = p / ties.clamp_min(1).unsqueeze(-1)
        ent = ties.clamp_min(1).log()
        lse = torch.where(empty, float("-inf"), float("inf")).to(ct)
    tw, ti = topk_weights(p, topk) if topk else (None, None)  # [B, H, Sq, k]
    zmax = None if eps > 0 else top.squeeze(-1).masked_fill(empty, float("-inf"))
    return AttentionStepStats(lse, ent, keys, eps, "explicit", reason, tw, ti, zmax)
