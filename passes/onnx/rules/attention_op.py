"""Rule `attention_op`: the opset-23 `Attention` op (one node = one attention step).

    ε = 1/scale;  scale defaults to 1/√head_size  (head_size = Q[-1], or q_hidden / q_num_heads)
Exact (paper-notes §4); a `softcap` (scores ← c·tanh(scores/c)) is noted, the Gibbs reading holds
for the capped scores.
"""

from __future__ import annotations

import math

from hjplug.passes.onnx.graph import GraphIndex
from hjplug.passes.onnx.records import NearMiss, OnnxMatch
from hjplug.passes.onnx.rules.attention_chain import spec

NAME = "attention_op"


def _head_size(g: GraphIndex, i: int) -> tuple[int | None, int | None]:
    """(heads, head_size) of an Attention node from Q's shape and the head-count attributes."""
    qs = g.shape(g.nodes[i].input[0])
    heads = g.attr(i, "q_num_heads")
    if qs is None:
        return heads, None
    if len(qs) == 4:
        return (qs[1] if isinstance(qs[1], int) else heads), (
            qs[3] if isinstance(qs[3], int) else None)
    if len(qs) == 3 and isinstance(qs[2], int) and heads:
        return heads, qs[2] // heads
    return heads, None


def _check(g: GraphIndex, i: int) -> OnnxMatch | NearMiss:
    name, path = g.name(i), g.block_path(i)
    heads, d_head = _head_size(g, i)
    scale = g.attr(i, "scale")
    notes: list[str] = []
    n_in = len(g.nodes[i].input)
    if scale is None or scale == 0.0:
        if d_head is None:
            return NearMiss(NAME, name, path, "Attention without a scale attribute and with an "
                            "unknown head size (no shape for Q): ε = √d_head cannot be read")
        scale = 1.0 / math.sqrt(d_head)
        notes.append("default scale: ε = √d_head")
    if scale <= 0:
        return NearMiss(NAME, name, path, f"non-positive scale {scale:g}")
    if g.attr(i, "is_causal", 0):
        # ONNX spec (opset 23): query i attends key j iff j ≤ i + past_sequence_length; with no
        # past_key that is top-left aligned, as PyTorch SDPA's is_causal, also for Sq ≠ Sk
        past = n_in > 4 and bool(g.nodes[i].input[4])
        notes.append("causal (key j ≤ query i + past length)" if past else
                     "causal (top-left: key j ≤ query i, as SDPA is_causal)")
    if g.attr(i, "softcap", 0.0):
        notes.append(f"softcap {g.attr(i, 'softcap'):g} on the scores")
    kv_heads = g.attr(i, "kv_num_heads") or heads
    if kv_heads and heads and kv_heads != heads:
        notes.append(f"grouped-query ({heads} query / {kv_heads} kv heads)")
    if n_in > 3 and g.nodes[i].input[3]:
        notes.append("attn_mask")
    params = {"heads": heads, "kv_heads": kv_heads, "d_head": d_head, "scale": float(scale)}
    cls = g.module_class(i)
    evidence = ("onnx.Attention",) + ((cls,) if cls else ())
    return OnnxMatch(NAME, spec(path, 1.0 / scale, params, evidence, notes), i, (i,),
                     g.source((i,)))


class AttentionOpRule:
    name = NAME

    def scan(self, g: GraphIndex, claimed: set[int]) -> list[OnnxMatch | NearMiss]:
        return [_check(g, i) for i, n in enumerate(g.nodes)
                if n.op_type == "Attention" and (n.domain or "") in ("", "ai.onnx")
                and i not in claimed]


RULE = AttentionOpRule()
