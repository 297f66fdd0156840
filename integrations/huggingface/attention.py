"""The attention function registered in transformers' `AttentionInterface` as "hjplug".

One attention head reads as a Hopf–Cole (LSE) step in its query (paper-notes §4):

    s_ij = scaling · q_i·k_j + b_ij            b = position bias + mask (−∞ = removed key)
    z_ij = s_ij / λ_h                          λ_h = deformation of head h, ε_h = λ_h / scaling
    π_ij = softmax_j(z_ij),   out_i = Σ_j π_ij v_j
    λ_h = 0: π_i = uniform over argmax_j s_ij  (tropical / hard-max limit)

Three paths, one visible branch in `hjplug_attention_forward`:
  fast    no statistics, no deformation, no soft-cap → transformers' own SDPA call (identical
          numerics to the stock "sdpa" model; nothing else runs)
  kernel  statistics and/or λ_h > 0 → `hjplug.kernels.hj_attention` (blockwise: lse and entropy
          in O(queries) memory per head; fused Triton on CUDA, PyTorch reference elsewhere)
  eager   soft-cap c·tanh(s/c), a tropical head (λ_h = 0) or training-time dropout → readable
          matmul / softmax / matmul (with statistics wanted: one KernelFallbackWarning per
          reason on CUDA, where the kernel was expected)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hjplug.integrations.huggingface.attention_math import (
    combine_bias,
    eager_attention,
    prescaled_query,
    topk_weights,
    visible_counts,
)
from hjplug.integrations.huggingface.records import AttentionStats, ModuleState
from hjplug.modules.attention_stats import warn_fallback

__all__ = ["hjplug_attention_forward"]


def _sdpa() -> Any:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward


def hjplug_attention_forward(
    module: torch.nn.Module,
    query: Tensor,  # [B, H, Sq, D]
    key: Tensor,  # [B, Hk, Sk, D], Hk | H (grouped-query)
    value: Tensor,  # [B, Hk, Sk, Dv]
    attention_mask: Tensor | None,  # bool [B|1, 1|H, Sq, Sk] (True = keep), float additive, None
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    position_bias: Tensor | None = None,  # T5-style relative bias [B|1, H, Sq, Sk]
    softcap: float | None = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor | None]:
    """AttentionInterface entry: returns (out [B, Sq, H, Dv], weights [B, H, Sq, Sk] or None)."""
    state: ModuleState | None = getattr(module, "_hjplug", None)
    if softcap is None and (state is None or state.idle):  # fast path: stock SDPA, nothing else
        return _sdpa()(module, query, key, value, attention_mask, dropout=dropout,
                       scaling=scaling, is_causal=is_causal, position_bias=position_bias,
                       **kwargs)
    return _hj_forward(module, state, query, key, value, attention_mask, dropout, scaling,
                       is_causal, position_bias, softcap)


def _hj_forward(module: torch.nn.Module, state: ModuleState | None, query: Tensor, key: Tensor,
                value: Tensor, mask: Tensor | None, dropout: float, scaling: float | None,
                is_causal: bool | None, position_bias: Tensor | None, softcap: float | None
                ) -> tuple[Tensor, Tensor | None]:
    B, H, Sq, D = query.shape
    scale = D**-0.5 if scaling is None else float(scaling)
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    causal = bool(Sq > 1 and mask is None and causal)  # same rule as transformers' SDPA path
    if causal and key.shape[2] > Sq:  # empty static-cache slots: crop (as SDPA does)
        key, value = key[:, :, :Sq], value[:, :, :Sq]
        position_bias = None if position_bias is None else position_bias[..., :Sq]
    Sk = key.shape[2]
    bias = combine_bias(mask, position_bias, query.dtype)
    lam = None if state is None or state.scale is None else torch.tensor(
        state.scale, dtype=torch.float64, device=query.device)  # [H]
    drop = dropout if module.training else 0.0
    topk = max(state.topk, default=0) if state is not None else 0
    weights: Tensor | None = None
    smax: Tensor | None = None
    top: tuple[Tensor | None, Tensor | None] = (None, None)
    viscous = state is None or state.scale is None or min(state.scale) > 0  # no λ_h = 0 head
    if softcap is None and drop == 0.0 and viscous:
        out, lse, ent, top = _kernel_path(query, key, value, bias, scale, causal, lam, topk)
        backend = "kernel"
        keys = visible_counts(bias, causal, (B, H, Sq, Sk), query.device)
    else:
        if state is not None and not state.idle:  # statistics / deformation wanted
            warn_fallback(f"hjplug attention ({state.path})", _eager_reason(softcap, drop),
                          query.is_cuda)
        # computed in ct (fp32 at least, fp64 for fp64 models) as eager_attention does anyway;
        # π is rounded to the model's dtype only for the returned weights, not for its top-k
        ct = torch.float64 if query.dtype == torch.float64 else torch.float32
        out, lse, ent, keys, p, smax = eager_attention(query.to(ct), key.to(ct), value.to(ct),
                                                       bias, scale, causal, lam, softcap, drop)
        out, weights = out.to(query.dtype), p.to(query.dtype)
        backend = "eager"
        if topk:
            top = topk_weights(p, topk)  # π [B, H, Sq, Sk]
    if state is not None and (state.recorders or state.keep):
        # ε₀ = 1/scaling, or 1/s₀ for queries the module pre-scaled by s₀ (as its block record)
        eps_scale = prescaled_query(module, scaling) or scale
        _deliver(state, eps_scale, lam, lse, ent, keys, smax, backend, top, query.device)
    return out.transpose(1, 2).contiguous(), weights  # [B, Sq, H, Dv]


def _eager_reason(softcap: float | None, dropout: float) -> str:
    """Why a call with statistics leaves the kernel (the one-time fallback warning's text)."""
    if softcap is not None:
        return "logit soft-capping c·tanh(s/c) is not in the kernel"
    if dropout:
        return "attention dropout in training is not in the kernel"
    return "a tropical head (λ_h = 0, hard max) has no Gibbs weights to stream"


def _kernel_path(query: Tensor, key: Tensor, value: Tensor, bias: Tensor | None, scale: float,
                 causal: bool, lam: Tensor | None, topk: int
                 ) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor | None, Tensor | None]]:
    """λ_h folds into the query and the float bias: z = (scale·(q/λ)·k + b/λ)."""
    from hjplug.kernels import hj_attention

    if lam is not None:
        inv = (1.0 / lam).to(query.dtype).view(1, -1, 1, 1)  # [1, H, 1, 1]
        query = query * inv
        if bias is not None and bias.dtype != torch.bool:
            bias = bias * inv  # −∞ stays −∞; broadcasts to [B, H, Sq, Sk]
    r = hj_attention(query, key, value, scale=scale, causal=causal, bias=bias, topk=topk)
    return r.out, r.lse, r.entropy, (r.topk_weights, r.topk_indices)  # [B,H,Sq,Dv], [B,H,Sq]…


def _deliver(state: ModuleState, scale: float, lam: Tensor | None, lse: Tensor, ent: Tensor,
             keys: Tensor, smax: Tensor | None, backend: str,
             top: tuple[Tensor | None, Tensor | None], device: torch.device) -> None:
    H = lse.shape[1]
    lam_h = torch.ones(H, dtype=torch.float64, device=device) if lam is None else lam
    eps = (lam_h / scale).to(lse.dtype)  # [H]
    e = eps.view(1, H, 1)

    def build(lse: Tensor, ent: Tensor, tw: Tensor | None) -> AttentionStats:
        value = e * lse  # [B, H, Sq]
        if smax is not None:  # tropical heads (ε_h = 0): value = max_j s_ij / scaling
            value = torch.where(e > 0, value, smax.detach().to(lse.dtype) / scale)
        ent = torch.where(keys == 0, torch.full_like(ent, float("nan")), ent)  # no distribution
        kf = keys.to(ent.dtype)
        norm = torch.where(keys > 1, ent / kf.clamp_min(2).log(),
                           torch.full_like(ent, float("nan")))
        return AttentionStats(state.path, state.index, eps, lse, value, ent, norm, keys,
                              backend, tw, top[1])

    # detached for every consumer but recorders that asked for the graph (instrument(grad=
    # True)): no other callback and no `state.last` keeps the forward graph alive
    plain = build(lse.detach(), ent.detach(), None if top[0] is None else top[0].detach())
    graph = None
    for rec in state.recorders:
        if getattr(rec, "wants_grad", False):
            if graph is None:
                graph = build(lse, ent, top[0])
            rec(graph)
        else:
            rec(plain)
    if state.keep:
        state.last = plain
