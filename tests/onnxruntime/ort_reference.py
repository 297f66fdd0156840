"""Independent PyTorch reference for the statistics outputs: eager attention with
`output_attentions=True` gives π per layer; forward hooks on the query/key projections give the
scores. Removed keys (padding, causal future) are dropped, as the statistics define.

    z = q kᵀ / √d_head over kept keys      LSE = logsumexp(z)      H = −Σ_{π>0} π log π
"""

from __future__ import annotations

import math
from typing import Any

import torch


def _qk_bert(model: torch.nn.Module, layer: int, cap: dict) -> tuple[torch.Tensor, torch.Tensor]:
    att = model.encoder.layer[layer].attention.self
    h, dh = att.num_attention_heads, att.attention_head_size
    q, k = cap[f"q{layer}"], cap[f"k{layer}"]
    b, t, _ = q.shape
    return (q.view(b, t, h, dh).transpose(1, 2), k.view(b, t, h, dh).transpose(1, 2))


def _qk_gpt2(model: torch.nn.Module, layer: int, cap: dict) -> tuple[torch.Tensor, torch.Tensor]:
    attn = model.transformer.h[layer].attn
    h, dh = attn.num_heads, attn.head_dim
    qkv = cap[f"q{layer}"]
    b, t, _ = qkv.shape
    q, k, _v = qkv.split(attn.split_size, dim=2)
    return (q.view(b, t, h, dh).transpose(1, 2), k.view(b, t, h, dh).transpose(1, 2))


def reference_stats(model: torch.nn.Module, family: str, inputs: dict[str, Any]
                    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Block path → (log-partition, entropy), each (batch, heads, query), in float64."""
    bert = family == "bert"
    layers = model.encoder.layer if bert else model.transformer.h
    prefix = "encoder.layer.{}.attention.self" if bert else "transformer.h.{}.attn"
    cap: dict[str, torch.Tensor] = {}
    hooks = []
    for i, layer in enumerate(layers):
        mods = ([("q", layer.attention.self.query), ("k", layer.attention.self.key)] if bert
                else [("q", layer.attn.c_attn)])
        for tag, mod in mods:
            hooks.append(mod.register_forward_hook(
                lambda _m, _a, out, key=f"{tag}{i}": cap.__setitem__(key, out.detach())))
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            kwargs = dict(inputs, output_attentions=True)
            if not bert:
                kwargs["use_cache"] = False
            attentions = model(**kwargs).attentions
    finally:
        model.set_attn_implementation(before)
        for hk in hooks:
            hk.remove()
    mask = inputs["attention_mask"].bool()  # (b, k)
    out = {}
    for i, pi in enumerate(attentions):
        q, k = (_qk_bert if bert else _qk_gpt2)(model, i, cap)
        z = (q.double() @ k.double().transpose(-1, -2)) / math.sqrt(q.shape[-1])
        keep = mask[:, None, None, :].expand_as(z)
        if not bert:
            t = z.shape[-1]
            keep = keep & torch.ones(t, t, dtype=torch.bool).tril()
        z = z.masked_fill(~keep, float("-inf"))
        # the hooked scores are those of the model: their softmax is output_attentions' π
        assert torch.allclose(z.softmax(-1), pi.double(), atol=1e-5), f"layer {i}: scores"
        p = pi.double()
        ent = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)
        out[prefix.format(i)] = (torch.logsumexp(z, dim=-1), ent)
    return out
