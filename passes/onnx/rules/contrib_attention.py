"""Rule `contrib_attention`: ONNX Runtime's `com.microsoft` Attention / MultiHeadAttention /
GroupQueryAttention contrib ops (one node = one attention step).

    ε = 1/scale;  scale = 0 (the default) means 1/√head_size
head_size: Attention → hidden/num_heads (hidden from the weights or `qkv_hidden_sizes`);
MultiHeadAttention → query hidden/num_heads (or the packed layout's last dim);
GroupQueryAttention → hidden/num_heads, or hidden/(num_heads + 2·kv_num_heads) when QKV is packed.
"""

from __future__ import annotations

import math

from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch
from hjplug.passes.onnx.rules.attention_chain import spec

NAME = "contrib_attention"
OPS = ("Attention", "MultiHeadAttention", "GroupQueryAttention")


def _dim(shape: tuple | None, k: int) -> int | None:
    try:
        d = shape[k] if shape is not None else None
    except IndexError:
        return None
    return d if isinstance(d, int) else None


def _head_size(g: GraphIndex, i: int) -> int | None:
    n = g.nodes[i]
    heads = g.attr(i, "num_heads")
    if not heads:
        return None
    inputs = list(n.input) + [""] * 3
    if n.op_type == "Attention":
        sizes = g.attr(i, "qkv_hidden_sizes")
        if sizes:
            return int(sizes[0]) // heads
        w = _dim(g.shape(inputs[1]), -1)
        return w // 3 // heads if w else None
    qs = g.shape(inputs[0])
    if n.op_type == "MultiHeadAttention" and qs is not None and len(qs) == 5:
        return _dim(qs, -1)  # packed (B, S, N, 3, H)
    hidden = _dim(qs, -1)
    if hidden is None:
        return None
    if n.op_type == "GroupQueryAttention" and not inputs[1]:
        return hidden // (heads + 2 * (g.attr(i, "kv_num_heads") or heads))
    return hidden // heads


def _check(g: GraphIndex, i: int) -> OnnxMatch | NearMiss:
    n = g.nodes[i]
    name, path = g.name(i), g.block_path(i)
    heads = g.attr(i, "num_heads")
    d_head = _head_size(g, i)
    scale = g.attr(i, "scale") or 0.0
    notes: list[str] = []
    if scale == 0.0:
        if d_head is None:
            return NearMiss(NAME, name, path, f"com.microsoft.{n.op_type} with the default "
                            "scale and an unknown head size (no input shapes): ε = √d_head "
                            "cannot be read")
        scale = 1.0 / math.sqrt(d_head)
        notes.append("default scale: ε = √d_head")
    if scale < 0:
        return NearMiss(NAME, name, path, f"negative scale {scale:g}")
    kv_heads = g.attr(i, "kv_num_heads") or heads
    if kv_heads != heads:
        notes.append(f"grouped-query ({heads} query / {kv_heads} kv heads)")
    if g.attr(i, "unidirectional", 0) or n.op_type == "GroupQueryAttention":
        notes.append("causal")
    if g.attr(i, "softcap", 0.0):
        notes.append(f"softcap {g.attr(i, 'softcap'):g} on the scores")
    if g.attr(i, "do_rotary", 0):
        notes.append("RoPE on q, k")
    params = {"heads": heads, "kv_heads": kv_heads, "d_head": d_head, "scale": float(scale)}
    cls = g.module_class(i)
    evidence = (f"com.microsoft.{n.op_type}",) + ((cls,) if cls else ())
    return OnnxMatch(NAME, spec(path, 1.0 / scale, params, evidence, notes), i, (i,),
                     g.source((i,)))


class ContribAttentionRule:
    name = NAME

    def scan(self, g: GraphIndex, claimed: set[int]) -> list[OnnxMatch | NearMiss]:
        return [_check(g, i) for i, n in enumerate(g.nodes)
                if n.domain == "com.microsoft" and n.op_type in OPS and i not in claimed]


RULE = ContribAttentionRule()
