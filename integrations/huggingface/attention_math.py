"""Masking and reference attention math shared by the "hjplug" attention function and the
instrumentation taps (hjplug.instrument): one bias rule, one visibility rule, one eager path.

    s_ij = scaling · q_i·k_j + b_ij         b = position bias + mask (−∞ = removed key)
    z_ij = s_ij / λ_h,   π_ij = softmax_j(z_ij),   out_i = Σ_j π_ij v_j
    k_i  = #{j : key j visible to query i}  (mask, padding, causal)
"""

from __future__ import annotations

import torch
from torch import Tensor

from hjplug.kernels.reference.topk import topk_weights
from hjplug.modules.attention_bias import is_removed

__all__ = ["attention_logits", "combine_bias", "eager_attention", "prescaled_query",
           "topk_weights", "visible_counts", "visible_mask"]


def combine_bias(mask: Tensor | None, position_bias: Tensor | None, dtype: torch.dtype
                 ) -> Tensor | None:
    """One bias b for the scores: bool (True = keep) or float additive with −∞ = removed key.

    Float masks from transformers use finfo(dtype).min for removed keys: those become −∞ here so
    that removed keys are never counted as atoms.
    """
    if mask is not None and mask.dtype != torch.bool:  # one rule with the kernels: ≤ −10³⁰
        mask = torch.where(is_removed(mask), torch.full_like(mask, float("-inf")), mask)
    if position_bias is None:
        return mask
    pb = position_bias.to(dtype)
    if mask is None:
        return pb
    if mask.dtype == torch.bool:
        return torch.where(mask, pb, torch.full_like(pb, float("-inf")))
    return pb + mask.to(dtype)


def prescaled_query(module: torch.nn.Module, scaling: float | None) -> float | None:
    """s₀ when the module already multiplied its queries by its own `scaling` s₀ and calls
    attention with scaling = 1.0 (BART, OPT, Whisper, Marian, …: q = q_proj(x)·s₀); None
    otherwise. The block's ε₀ = 1/s₀ then refers to q_proj(x), as for every other family."""
    own = getattr(module, "scaling", None)
    if scaling is None or float(scaling) != 1.0 or isinstance(own, bool) or not isinstance(
            own, int | float) or own <= 0 or float(own) == 1.0:
        return None
    return float(own)


def visible_mask(bias: Tensor | None, causal: bool, Sq: int, Sk: int, device: torch.device
                 ) -> Tensor:
    """[B|1, H|1, Sq, Sk] bool: key j is an atom for query i (finite bias, causal bottom-right)."""
    vis = torch.ones(1, 1, Sq, Sk, dtype=torch.bool, device=device)  # [1, 1, Sq, Sk]
    if bias is not None:
        vis = vis & (bias if bias.dtype == torch.bool else torch.isfinite(bias))
    if causal:  # aligned bottom-right (Sq == Sk after cropping)
        i = torch.arange(Sq, device=device).unsqueeze(1) + (Sk - Sq)
        vis = vis & (torch.arange(Sk, device=device).unsqueeze(0) <= i)
    return vis


def visible_counts(bias: Tensor | None, causal: bool, shape: tuple[int, int, int, int],
                   device: torch.device) -> Tensor:
    """k_i: number of unmasked keys per (batch, head, query) → [B, H, Sq] int64."""
    B, H, Sq, Sk = shape
    if bias is None and not causal:
        return torch.full((B, H, Sq), Sk, dtype=torch.long, device=device)
    return visible_mask(bias, causal, Sq, Sk, device).sum(-1).expand(B, H, Sq).to(torch.long)


def attention_logits(query: Tensor, key: Tensor, bias: Tensor | None, scale: float,
                     causal: bool, softcap: float | None) -> Tensor:
    """The undeformed logits z₀ = scale·q·kᵀ (soft-capped) + bias, removed keys −inf:
    [B, H, Sq, Sk] in fp32 at least (grouped-query keys expanded; causal bottom-right)."""
    B, H, Sq, _ = query.shape
    Hk, Sk = key.shape[1], key.shape[2]
    ct = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) else query.dtype
    k = key[:, :, None].expand(B, Hk, H // Hk, Sk, key.shape[-1]).reshape(B, H, Sk, -1)
    s = scale * (query.to(ct) @ k.to(ct).transpose(-1, -2))  # [B, H, Sq, Sk]
    if softcap is not None:
        s = softcap * torch.tanh(s / softcap)  # not an LSE transform: heads are structural
    if bias is not None:
        s = s.masked_fill(~bias, float("-inf")) if bias.dtype == torch.bool else s + bias.to(ct)
    if causal:
        i = torch.arange(Sq, device=s.device).unsqueeze(1) + (Sk - Sq)
        s = s.masked_fill(torch.arange(Sk, device=s.device).unsqueeze(0) > i, float("-inf"))
    return s


def eager_attention(query: Tensor, key: Tensor, value: Tensor, bias: Tensor | None,
                    scale: float, causal: bool, lam: Tensor | None, softcap: float | None,
                    drop: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Readable matmul / softmax / matmul: (out [B,H,Sq,Dv], lse, entropy, keys [B,H,Sq],
    π [B,H,Sq,Sk], max_j s_ij [B,H,Sq]). Soft-cap c·tanh(s/c); λ_h = 0: π uniform over argmax."""
    B, H = query.shape[:2]
    Hk, Sk = key.shape[1], key.shape[2]
    ct = torch.float32 if query.dtype in (torch.float16, torch.bfloat16) else query.dtype
    v = value[:, :, None].expand(B, Hk, H // Hk, Sk, value.shape[-1]).reshape(B, H, Sk, -1)
    s = attention_logits(query, key, bias, scale, causal, softcap)  # [B, H, Sq, Sk]
    finite = torch.isfinite(s)
    keys = finite.sum(-1)  # [B, H, Sq]
    smax = s.amax(-1, keepdim=True)  # [B, H, Sq, 1]
    z = s
    if lam is not None:
        lv = lam.to(ct).view(1, H, 1, 1)
        tropical = torch.where((s == smax) & finite, 0.0, float("-inf")).to(ct)
        z = torch.where(lv > 0, s / torch.where(lv > 0, lv, 1.0), tropical)
    empty = keys == 0  # rows with no visible key: out = 0, lse = −∞, entropy = 0
    z = z.masked_fill(empty.unsqueeze(-1), 0.0)
    logp = torch.log_softmax(z, dim=-1)
    p = logp.exp().masked_fill(empty.unsqueeze(-1), 0.0)  # π [B, H, Sq, Sk]
    ent = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1)  # [B, H, Sq]
    lse = torch.logsumexp(z, dim=-1).masked_fill(empty, float("-inf"))
    if lam is not None:  # tropical heads: the log-partition of z = s/λ diverges (λ → 0)
        lse = torch.where(lam.to(ct).view(1, H, 1) > 0, lse, lse.masked_fill(~empty, float("inf")))
    pd = torch.nn.functional.dropout(p, drop, training=True) if drop > 0 else p
    out = (pd @ v.to(ct)).to(query.dtype)  # [B, H, Sq, Dv]
    return out, lse, ent, keys, p.to(query.dtype), smax.squeeze(-1)  # smax [B, H, Sq]
